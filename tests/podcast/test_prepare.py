"""`podcast prepare` against a simulated stream in moto with the demo model: the dataset folder, re-runs,
resuming after a kill, and the one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import soundfile
from hydrophone_worker.domain import clip_name

from tests.podcast.conftest import (
    CALLS_AT,
    END_PACIFIC,
    EPOCH,
    START_PACIFIC,
    STREAM,
    Archive,
    Invoke,
    one_line_error,
    prepare_args,
    snapshot,
)
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
HEADER = "wav_filename\tstart_time_s\tduration_s\tconfidence"
FIRST_CLIP = datetime.fromisoformat("2026-12-01T08:00:02+00:00")  # the first folder's audio start


@pytest.fixture(scope="module")
def prepared(archive: Archive, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One full run (times in upstream's US/Pacific format), shared by the tests that only read its output."""
    from click.testing import CliRunner
    from hydrophone_worker.cli import main

    folder = tmp_path_factory.mktemp("round")
    args = prepare_args(archive, folder)
    args[args.index("--start") + 1], args[args.index("--end") + 1] = START_PACIFIC, END_PACIFIC
    result = CliRunner(env={"PODCAST_AZURE_STORAGE_CONNECTION_STRING": None}).invoke(main, args)
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_the_tsv_lists_every_window_above_the_threshold_of_the_clips_with_calls(prepared) -> None:
    folder, _ = prepared
    lines = (folder / "predictions.tsv").read_text().splitlines()
    assert lines[0] == HEADER
    rows = [line.split("\t") for line in lines[1:]]
    names = sorted({r[0] for r in rows})
    # One call in each of the first folder's two clips; the quiet clips after the restart have no rows.
    assert names == [
        f"{clip_name(STREAM, FIRST_CLIP)}.wav",
        f"{clip_name(STREAM, FIRST_CLIP + timedelta(seconds=60.03))}.wav",
    ]
    for name, start, duration, confidence in rows:
        clip_start = FIRST_CLIP if name == names[0] else FIRST_CLIP + timedelta(seconds=60.03)
        call_into_clip = (EPOCH + 2 + CALLS_AT[names.index(name)]) - clip_start.timestamp()
        assert float(duration) == 2.0  # the demo model's windows (2 s, hop 1 s)
        assert float(confidence) > 0.4
        # Each listed window overlaps its clip's 1 s call.
        assert float(start) < call_into_clip + 1.0 and call_into_clip < float(start) + 2.0, (name, start)


def test_each_listed_clip_has_its_wav_and_json_and_nothing_else_does(prepared) -> None:
    folder, _ = prepared
    listed = {
        line.split("\t")[0].removesuffix(".wav")
        for line in (folder / "predictions.tsv").read_text().splitlines()[1:]
    }
    assert {p.stem for p in folder.glob("*.wav")} == listed == {p.stem for p in folder.glob("*.json")}
    for name in listed:
        audio, rate = soundfile.read(folder / f"{name}.wav")
        assert rate == 48_000 and 59.9 < len(audio) / rate < 60.2  # the whole clip scored, source rate


def test_the_json_has_upstreams_shape_and_matches_the_tsv(prepared) -> None:
    folder, _ = prepared
    rows = [line.split("\t") for line in (folder / "predictions.tsv").read_text().splitlines()[1:]]
    name = clip_name(STREAM, FIRST_CLIP)
    document = json.loads((folder / f"{name}.json").read_text())
    assert list(document) == ["uri", "absolute_time", "source_guid", "annotations", "model_guid"]
    assert (
        document["uri"]
        == f"https://mldevdatastorage.blob.core.windows.net/podcast-audiosegments/round9/{name}.wav"
    )
    assert document["absolute_time"] == "2026-12-01T08:00:02.000000Z"
    assert name == "rpi_podcast_test_2026_12_01_00_00_02_PST"
    assert document["source_guid"] == STREAM and document["model_guid"] == "demo-cnn-synthetic-v1"
    assert [
        (a["start_time_s"], a["duration_s"], round(a["confidence"], 6)) for a in document["annotations"]
    ] == [(float(s), float(d), float(c)) for n, s, d, c in rows if n == f"{name}.wav"]


def test_the_summary_reports_the_clips_and_the_restart_gap(prepared) -> None:
    _, output = prepared
    assert "clips scored             │ 5" in output
    assert "gap: stream-restart" in output


def test_a_rerun_changes_nothing(archive: Archive, invoke: Invoke, tmp_path: Path) -> None:
    assert invoke(prepare_args(archive, tmp_path)).exit_code == 0
    before = snapshot(tmp_path)
    again = invoke(prepare_args(archive, tmp_path))
    assert again.exit_code == 0, again.output
    assert "already prepared" in again.output
    assert snapshot(tmp_path) == before  # same bytes, same modification times


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(
    archive: Archive, invoke: Invoke, tmp_path: Path
) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert invoke(prepare_args(archive, whole)).exit_code == 0
    script = Path(sys.executable).with_name("hydrophone-worker")
    process = subprocess.Popen(
        [str(script), *prepare_args(archive, killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # Killed once the first clip's files are written: before or after its checkpoint moved past it.
        assert wait_until(lambda: any(killed.glob("*.json")), timeout_s=120)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
    [checkpoint] = (killed / ".podcast-state").glob("checkpoint-*.json")
    stopped_at = datetime.fromisoformat(json.loads(checkpoint.read_text())["lastEnd"])
    assert stopped_at < datetime.fromisoformat("2026-12-01T08:03:30+00:00")  # killed midway
    resumed = invoke(prepare_args(archive, killed))
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at" in resumed.output
    files = lambda root: {k: v[0] for k, v in snapshot(root).items() if not k.startswith(".podcast-state")}  # noqa: E731
    assert files(killed) == files(whole)  # same files, same bytes: no duplicate rows, nothing missing


def test_windows_follow_the_detection_flags(archive: Archive, invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(prepare_args(archive, tmp_path, "--window", "3", "--hop", "2"))
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in (tmp_path / "predictions.tsv").read_text().splitlines()[1:]]
    assert rows and all(d == "3" and float(s) % 2 == 0 for _, s, d, _ in rows)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"--start": "2026-12-01T08:03:30Z", "--end": "2026-12-01T08:00:00Z"}, "--end"),
        ({"--start": "yesterday"}, "--start"),
        ({"--stream": "rpi_no_such_node"}, "--stream"),
        ({"--stream": "Bush Point"}, "--stream"),
        ({"--round-id": "Round_5"}, "--round-id"),
        ({"--model": "/nonexistent/model"}, "--model"),
    ],
)
def test_bad_input_gets_one_clean_line(
    archive: Archive, invoke: Invoke, tmp_path: Path, change: dict, option: str
) -> None:
    args = prepare_args(archive, tmp_path / "round")
    for name, value in change.items():
        args[args.index(name) + 1] = value
    result = invoke(args)
    assert result.exit_code == 2
    assert option in one_line_error(result)


def test_an_unknown_stream_says_what_to_check(archive: Archive, invoke: Invoke, tmp_path: Path) -> None:
    args = prepare_args(archive, tmp_path / "round")
    args[args.index("--stream") + 1] = "rpi_no_such_node"
    line = one_line_error(invoke(args))
    assert "no stream 'rpi_no_such_node'" in line and "--base-url" in line
    assert not (tmp_path / "round").exists()  # a typo leaves no empty dataset folder behind


def test_an_unwritable_dataset_folder_is_refused_before_scoring(
    archive: Archive, invoke: Invoke, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke(prepare_args(archive, blocker / "round"))
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--dataset-folder" in line and "ENOTDIR" in line and "clips scored" not in result.output


def test_upload_without_a_connection_string_is_refused(
    archive: Archive, invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke(prepare_args(archive, tmp_path, "--upload"))
    assert result.exit_code == 2
    assert "PODCAST_AZURE_STORAGE_CONNECTION_STRING" in one_line_error(result)
    assert not (tmp_path / "predictions.tsv").exists()


def test_a_malformed_connection_string_is_refused_without_being_echoed(
    archive: Archive, invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke(prepare_args(archive, tmp_path, "--upload"), connection="not-a-connection-string-SECRET")
    assert result.exit_code == 2
    assert "PODCAST_AZURE_STORAGE_CONNECTION_STRING" in one_line_error(result)
    assert "SECRET" not in result.output


def test_a_write_failure_while_scoring_is_one_line(archive: Archive, invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "predictions.tsv").mkdir()  # something in the way of the TSV
    result = invoke(prepare_args(archive, tmp_path))
    assert result.exit_code == 1
    assert "predictions.tsv" in one_line_error(result)


def test_an_unreachable_bucket_is_one_line(invoke: Invoke, archive: Archive, tmp_path: Path) -> None:
    from tests.podcast.conftest import closed_port

    args = prepare_args(archive, tmp_path)
    args[args.index("--base-url") + 1] = f"http://127.0.0.1:{closed_port()}/bucket"
    result = invoke(args)
    assert result.exit_code == 1
    assert "--base-url" in one_line_error(result)
