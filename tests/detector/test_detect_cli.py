"""`hydrophone-worker detect`: output formats, option errors, unreadable files among good ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hydrophone_worker.cli import main
from hydrophone_worker.detector.cpu import available_threads, cpu_supports_bf16
from hydrophone_worker.detector.fast import BF16_MAX_DP
from hydrophone_worker.detector.modeldir import ModelConfig, save_model_dir

from .conftest import realistic_audio


@pytest.fixture(scope="module")
def model_dir(resnet, tmp_path_factory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("model") / "resnet", resnet.state_dict(), ModelConfig())


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("audio")
    files = {
        "good": directory / "rpi_orcasound_lab_2021_10_13_15_11_18_PDT.wav",
        "short": directory / "one_second.flac",
        "corrupt": directory / "corrupt.wav",
        "missing": directory / "missing.wav",
    }
    stereo = np.stack([realistic_audio(48000, 5.5, seed=21), realistic_audio(48000, 5.5, seed=22)])
    sf.write(files["good"], stereo.T, 48000, subtype="PCM_16")
    sf.write(files["short"], realistic_audio(44100, 1.0, seed=23), 44100)
    files["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really" * 10)
    return files


def run(*args: str | Path):
    return CliRunner().invoke(main, ["detect", *map(str, args)], catch_exceptions=False)


def test_json_lines_for_every_file_and_exit_2_when_some_are_unreadable(model_dir, audio_files):
    order = ["good", "corrupt", "short", "missing"]
    result = run("--model", model_dir, "--json", *(audio_files[k] for k in order))
    assert result.exit_code == 2
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(audio_files[k]) for k in order]

    good, corrupt, short, missing = lines
    assert good["duration_s"] == pytest.approx(5.5)
    assert [s["start_s"] for s in good["segments"]] == [0.0, 2.0]
    assert all(s["duration_s"] == 3.0 for s in good["segments"])
    confidences = [s["confidence"] for s in good["segments"]]
    assert good["local_predictions"] == [int(c > 0.5) for c in confidences]
    assert good["global_confidence"] == pytest.approx(sum(confidences) / 2)  # mean of the top 2 of 2
    assert good["global_prediction"] == int(good["global_confidence"] >= 0.6)
    assert good["processing_s"] > 0
    assert set(good) == {
        "file",
        "duration_s",
        "segments",
        "local_predictions",
        "global_confidence",
        "global_prediction",
        "processing_s",
    }
    # Shorter than one window: scored, nothing to judge, not a crash.
    assert short["segments"] == [] and short["global_prediction"] == 0 and short["global_confidence"] == 0.0
    assert "error" in corrupt and "error" in missing
    # The errors on stderr name each unreadable file and why.
    assert f"{audio_files['corrupt']}: cannot read audio" in result.stderr
    assert f"{audio_files['missing']}: cannot read audio" in result.stderr
    assert "No such file" in result.stderr
    assert "2 of 4 file(s) could not be read" in result.stderr


def test_tsv_with_the_2020_rules_gives_one_row_per_second(model_dir, audio_files):
    result = run(
        "--model",
        model_dir,
        "--tsv",
        "--window",
        "2",
        "--hop",
        "1",
        "--aggregation",
        "positive_count",
        "--global-threshold",
        "3",
        audio_files["short"],
        audio_files["good"],
    )
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header == "wav_filename\tstart_time_s\tduration_s\tconfidence"
    # 5.5 s: 2 s windows at 0..3 s (4 windows) -> 5 per-second spans; the 1 s file adds no rows.
    assert [row.split("\t")[:3] for row in rows] == [
        ["rpi_orcasound_lab_2021_10_13_15_11_18_PDT.wav", str(s), "1"] for s in range(5)
    ]
    assert all(0.0 <= float(row.split("\t")[3]) <= 1.0 for row in rows)


def test_table_output_shows_each_file_and_its_verdict(model_dir, audio_files):
    result = run("--model", model_dir, audio_files["good"], audio_files["short"])
    assert result.exit_code == 0, result.output
    assert "rpi_orcasound_lab_2021_10_13_15_11_18_PDT.wav" in result.stdout
    assert "one_second.flac" in result.stdout and "0 windows" in result.stdout
    assert result.stdout.count("mean_top_k: global confidence") == 2


def test_bf16_runs_or_is_refused_clearly(model_dir, audio_files):
    result = run("--model", model_dir, "--json", "--precision", "bf16", audio_files["good"])
    if cpu_supports_bf16():
        assert result.exit_code == 0, result.output
        fp32 = run("--model", model_dir, "--json", audio_files["good"])
        bf16_line, fp32_line = json.loads(result.stdout), json.loads(fp32.stdout)
        assert bf16_line["global_prediction"] == fp32_line["global_prediction"]
        assert bf16_line["local_predictions"] == fp32_line["local_predictions"]
        for ours, reference in zip(bf16_line["segments"], fp32_line["segments"], strict=True):
            assert abs(ours["confidence"] - reference["confidence"]) <= max(BF16_MAX_DP.values())
    else:
        assert result.exit_code == 2
        assert "--precision" in result.stderr and "avx512_bf16" in result.stderr
        assert "use precision fp32" in result.stderr
        assert result.stdout == ""


def test_bf16_on_a_cpu_without_it_is_refused_before_the_weights_are_read(tmp_path, audio_files, monkeypatch):
    from hydrophone_worker.detector import fast

    monkeypatch.setattr(fast, "cpu_supports_bf16", lambda: False)
    result = run("--model", tmp_path / "no-model-here", "--precision", "bf16", audio_files["good"])
    assert result.exit_code == 2
    assert "--precision" in result.stderr and "bf16 needs a CPU with avx512_bf16" in result.stderr
    assert "use precision fp32" in result.stderr and result.stdout == ""


def test_help_states_the_measured_bf16_difference_and_the_backends():
    result = run("--help")
    text = " ".join(result.output.split())
    assert "measured on stand-in weights" in text and "auto = onnxruntime for fp32" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--tsv"], "--json and --tsv are exclusive"),
        (["--threads", str(available_threads() + 1)], "is more than the"),
        (["--aggregation", "positive_count"], "global_threshold 0.6 must be a whole count"),
        (["--hop", "0"], "hop_s 0.0 must be positive"),
    ],
)
def test_bad_options_are_refused_naming_the_option(model_dir, audio_files, args, message):
    result = run("--model", model_dir, *args, audio_files["good"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_missing_model_directory_is_an_error_naming_it(tmp_path, audio_files):
    result = run("--model", tmp_path / "nowhere", audio_files["good"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere'}: no such model directory" in result.stderr


def _wav_with_rate(path: Path, rate: int, samples: int = 4800) -> None:
    """A 16-bit mono WAV whose header claims `rate` Hz (soundfile refuses to write absurd rates)."""
    data = np.zeros(samples, dtype="<i2").tobytes()
    header = b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt "
    header += (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
    header += rate.to_bytes(4, "little") + (rate * 2 % 2**32).to_bytes(4, "little")
    header += (
        (2).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data" + len(data).to_bytes(4, "little")
    )
    path.write_bytes(header + data)


def _strict_json(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant} in {line}")

    return json.loads(line, parse_constant=refuse)


def test_hostile_files_are_each_reported_and_the_others_still_scored(model_dir, audio_files, tmp_path):
    huge_rate, nan, eight = tmp_path / "huge_rate.wav", tmp_path / "nan.wav", tmp_path / "eight.wav"
    _wav_with_rate(huge_rate, 2_147_483_647)  # resample_poly would try to allocate ~320 GiB
    noise = realistic_audio(48000, 4.0, seed=5)
    noise[1000:1010] = np.nan
    sf.write(nan, noise, 48000, subtype="FLOAT")
    sf.write(eight, np.stack([realistic_audio(48000, 4.0, seed=c) for c in range(8)]).T, 48000)
    result = run("--model", model_dir, "--json", huge_rate, audio_files["good"], nan, eight)
    assert result.exit_code == 2
    lines = [_strict_json(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(p) for p in (huge_rate, audio_files["good"], nan, eight)]
    assert "sample rate 2147483647 Hz is outside" in lines[0]["error"]
    assert "NaN or infinite samples" in lines[2]["error"]
    assert "error" not in lines[1] and "error" not in lines[3]  # 8 channels: downmixed and scored
    assert len(lines[3]["segments"]) == 1
    assert "2 of 4 file(s) could not be read" in result.stderr


def test_error_lines_are_not_wrapped_when_stderr_is_piped(model_dir, tmp_path):
    deep = tmp_path / ("a_directory_with_a_rather_long_name_" * 3) / "and_a_file_name_that_is_long_too.wav"
    result = run("--model", model_dir, deep)
    assert result.exit_code == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(deep) in line and "No such file" in line


def test_threads_zero_is_refused_as_out_of_range(model_dir, audio_files):
    result = run("--model", model_dir, "--threads", "0", audio_files["good"])
    assert result.exit_code == 2
    assert "'--threads': 0 is not in the range x>=1" in result.stderr
    assert "more than the" not in result.stderr


@pytest.mark.parametrize("normalize", [True, False])
def test_long_files_are_streamed_with_the_scores_of_the_whole_signal(resnet, tmp_path, normalize):
    from hydrophone_worker.audio.decode import decode
    from hydrophone_worker.detector.longfile import score_file
    from hydrophone_worker.detector.params import DetectionParams
    from hydrophone_worker.detector.scoring import Detector

    path = tmp_path / "long.wav"
    audio = np.stack([realistic_audio(44100, 25.0, seed=31), realistic_audio(44100, 25.0, seed=32)])
    sf.write(path, audio.T, 44100, subtype="PCM_16")
    detector = Detector(resnet, DetectionParams(normalize=normalize))
    whole = detector.score_audio(*decode(path))
    streamed = score_file(detector, path, block_s=6.0)  # 4 blocks and a tail
    assert streamed.duration_s == pytest.approx(25.0)
    assert len(streamed.score.window_scores) == len(whole.window_scores) == 12
    np.testing.assert_allclose(streamed.score.window_scores, whole.window_scores, rtol=0, atol=1e-6)
    assert streamed.score.positive == whole.positive
