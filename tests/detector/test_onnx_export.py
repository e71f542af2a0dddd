"""A model directory's ONNX export: used without torch when valid, refused when stale, else cached."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from hydrophone_worker.audio.decode import decode
from hydrophone_worker.detector import backend, export, fast, frontend, modeldir, network
from hydrophone_worker.detector.fast import PrecisionUnsupported
from hydrophone_worker.detector.load import load_detector
from hydrophone_worker.detector.model_cli import model
from safetensors.torch import save_file

from .conftest import count_exports, randomize_batch_norms, realistic_audio

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"
RATE = 48000


def demo_weights(seed: int) -> dict[str, torch.Tensor]:
    from hydrophone_worker.detector.demo_network import DemoCNN

    torch.manual_seed(seed)
    return randomize_batch_norms(DemoCNN(), seed).state_dict()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, directory)
    return directory


@pytest.fixture
def exported(model_dir: Path) -> Path:
    result = CliRunner().invoke(model, ["export-onnx", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "logits within" in result.output
    return model_dir


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv(backend.BACKEND_ENV, raising=False)
    return cache / "hydrophone-worker" / "onnx"


def unfused_scores(directory: Path, audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """P(call) per window of the directory's weights in the plain eval-mode network (the reference)."""
    loaded = modeldir.load_model_dir(directory)
    params = loaded.config.detection
    signal = frontend.prepare(audio, rate, params.normalize)
    starts = frontend.window_starts(len(signal), params.window_s, params.hop_s)
    batch = torch.from_numpy(frontend.spectrograms(signal, starts, params.window_s))
    with torch.inference_mode():
        return torch.softmax(loaded.network.eval()(batch), dim=1)[:, 1].numpy()


AUDIO = realistic_audio(RATE, 13.0, seed=11)

# What the worker does with a model directory (service.app.load_scorer), then one clip scored; run in a
# fresh interpreter, which reports the scores and whether torch was imported.
WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import hydrophone_worker.publish.factory, hydrophone_worker.source.history, hydrophone_worker.source.live
    from hydrophone_worker.config import parse_config
    from hydrophone_worker.service.app import load_scorer
    model = {"dir": sys.argv[1], "threads": 1, "precision": sys.argv[3]}
    config = parse_config({"stream": {"streamId": "rpi_orcasound_lab"}, "model": model})
    scorer = load_scorer(config)
    audio = np.load(sys.argv[2])
    scores = scorer.score_audio(audio, 48000).window_scores
    print(json.dumps({"backend": scorer.backend, "scores": scores, "torch": "torch" in sys.modules}))
    """
)


def run_worker(directory: Path, tmp_path: Path, precision: str = "fp32") -> dict:
    audio = tmp_path / "audio.npy"
    np.save(audio, AUDIO)
    env = {k: v for k, v in os.environ.items() if k != backend.BACKEND_ENV}
    result = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(directory), str(audio), precision],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


def test_a_valid_export_is_scored_without_importing_torch_and_exactly(exported, tmp_path, own_cache):
    ran = run_worker(exported, tmp_path)
    assert ran["backend"] == "onnxruntime"
    assert ran["torch"] is False
    want = unfused_scores(exported, AUDIO)
    assert len(ran["scores"]) == len(want) == 12 and np.ptp(want) > 1e-3
    np.testing.assert_allclose(ran["scores"], want, rtol=0, atol=1e-4)
    assert not own_cache.exists()  # nothing exported at start


def test_stale_export_is_refused_with_the_fix_and_the_cache_export_serves_the_new_weights(
    exported, tmp_path, own_cache, caplog, monkeypatch
):
    save_file(demo_weights(5), exported / modeldir.SAFETENSORS_FILE, metadata={"format": "pt"})
    exports = count_exports(monkeypatch)
    with caplog.at_level(logging.WARNING):
        detector, _config = load_detector(exported)
    assert "is stale (made from other weights)" in caplog.text
    assert f"model export-onnx {exported}" in caplog.text
    assert len(exports) == 1 and exports[0].is_relative_to(own_cache)  # re-exported into the cache
    got = detector.score_audio(AUDIO, RATE).window_scores
    np.testing.assert_allclose(got, unfused_scores(exported, AUDIO), rtol=0, atol=1e-4)
    # The next start finds the cached export: still no torch, and the same scores.
    again = run_worker(exported, tmp_path)
    assert again["torch"] is False and "is stale" in again["stderr"]
    np.testing.assert_allclose(again["scores"], got, rtol=0, atol=1e-6)


def test_without_an_export_the_first_start_exports_into_the_cache_and_the_next_uses_it(
    model_dir, tmp_path, own_cache, monkeypatch
):
    exports = count_exports(monkeypatch)
    first, _config = load_detector(model_dir)
    load_detector(model_dir)
    assert len(exports) == 1  # the second load found the cached export
    assert not (model_dir / backend.MODEL_FILE).exists()  # the model directory is never written
    want = unfused_scores(model_dir, AUDIO)
    np.testing.assert_allclose(first.score_audio(AUDIO, RATE).window_scores, want, rtol=0, atol=1e-4)
    restarted = run_worker(model_dir, tmp_path)
    assert restarted["torch"] is False
    np.testing.assert_allclose(restarted["scores"], want, rtol=0, atol=1e-4)


def test_an_unwritable_cache_costs_an_export_for_this_process_only(model_dir, tmp_path, caplog, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    detector, _config = load_detector(model_dir)
    assert "is not usable" in caplog.text
    np.testing.assert_allclose(
        detector.score_audio(AUDIO, RATE).window_scores, unfused_scores(model_dir, AUDIO), rtol=0, atol=1e-4
    )


def test_an_unloadable_export_with_a_matching_manifest_falls_back_to_the_cache(exported, caplog, monkeypatch):
    (exported / backend.MODEL_FILE).write_bytes(b"not an onnx model")
    exports = count_exports(monkeypatch)
    detector, _config = load_detector(exported)
    assert "ONNX Runtime cannot load it" in caplog.text and "using the cache instead" in caplog.text
    assert len(exports) == 1
    np.testing.assert_allclose(
        detector.score_audio(AUDIO, RATE).window_scores, unfused_scores(exported, AUDIO), rtol=0, atol=1e-4
    )


def test_an_unloadable_cached_export_is_made_again(model_dir, own_cache, caplog, monkeypatch):
    load_detector(model_dir)
    (cached,) = own_cache.glob(f"*/{backend.MODEL_FILE}")
    cached.write_bytes(b"truncated")
    exports = count_exports(monkeypatch)
    detector, _config = load_detector(model_dir)
    assert "exporting it again" in caplog.text and len(exports) == 1
    np.testing.assert_allclose(
        detector.score_audio(AUDIO, RATE).window_scores, unfused_scores(model_dir, AUDIO), rtol=0, atol=1e-4
    )


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: (d / export.MANIFEST_FILE).unlink(), "missing network.onnx.json"),
        (lambda d: (d / export.DATA_FILE).unlink(), "missing network.onnx.data"),
        (lambda d: (d / export.MANIFEST_FILE).write_text("{"), "network.onnx.json is unreadable"),
        (
            lambda d: (d / export.MANIFEST_FILE).write_text(
                (d / export.MANIFEST_FILE).read_text().replace('"demo-cnn"', '"resnet50"')
            ),
            "made from other architecture",
        ),
        (
            lambda d: (d / export.MANIFEST_FILE).write_text(
                (d / export.MANIFEST_FILE).read_text().replace('"format": 1', '"format": 0')
            ),
            "made from other format",
        ),
    ],
)
def test_a_damaged_or_foreign_export_is_stale(exported, damage, reason):
    config = modeldir.read_config(exported)
    identity = export.identity_of(exported / modeldir.SAFETENSORS_FILE, config)
    assert export.stale_reason(exported, identity) is None
    damage(exported)
    assert export.stale_reason(exported, identity) == reason
    assert export.directory_export(exported, identity) is None


def test_model_info_reports_the_export_and_export_onnx_renews_it(model_dir):
    runner = CliRunner()
    assert "onnx:       none" in runner.invoke(model, ["info", str(model_dir)]).output
    runner.invoke(model, ["export-onnx", str(model_dir)])
    assert "onnx:       valid\n" in runner.invoke(model, ["info", str(model_dir)]).output
    save_file(demo_weights(6), model_dir / modeldir.SAFETENSORS_FILE, metadata={"format": "pt"})
    assert "stale, not used: made from other weights" in runner.invoke(model, ["info", str(model_dir)]).output
    renewed = runner.invoke(model, ["export-onnx", str(model_dir)])
    assert renewed.exit_code == 0, renewed.output
    assert "onnx:       valid\n" in runner.invoke(model, ["info", str(model_dir)]).output
    assert not list(model_dir.glob(".onnx-export-*"))  # no scratch left behind


def test_export_onnx_refuses_what_is_not_a_model_directory(model_dir, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(model, ["export-onnx", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no such model directory" in missing.output
    (model_dir / modeldir.SAFETENSORS_FILE).write_bytes(b"garbage")
    broken = runner.invoke(model, ["export-onnx", str(model_dir)])
    assert broken.exit_code == 1 and "cannot read weights" in broken.output
    assert not (model_dir / export.MANIFEST_FILE).exists()


def test_an_export_that_disagrees_with_pytorch_is_never_marked_valid(model_dir, monkeypatch):
    monkeypatch.setattr(export, "MAX_LOGIT_DIFFERENCE", -1.0)  # any difference is too large
    result = CliRunner().invoke(model, ["export-onnx", str(model_dir)])
    assert result.exit_code == 1 and "not marked valid" in result.output
    assert not (model_dir / export.MANIFEST_FILE).exists()  # so the worker treats the files as stale


def test_an_explicit_torch_backend_loads_the_weights_beside_the_export_in_fp32_and_bf16(exported):
    torch_detector, _config = load_detector(exported, backend="torch")
    assert torch_detector.backend == "torch"
    want = unfused_scores(exported, AUDIO)
    np.testing.assert_allclose(torch_detector.score_audio(AUDIO, RATE).window_scores, want, atol=1e-5)
    if fast.cpu_supports_bf16():  # this project's benchmark CPUs have bf16: both branches are tested
        bf16, _config = load_detector(exported, precision="bf16", backend="torch")
        assert bf16.backend == "torch" and bf16.precision == "bf16"
        np.testing.assert_allclose(bf16.score_audio(AUDIO, RATE).window_scores, want, atol=0.05)


def test_bf16_runs_the_export_in_openvino_without_importing_torch_within_the_bound(exported, tmp_path):
    """auto + bf16 on a CPU with bf16 instructions: the directory's export in OpenVINO, as in the image."""
    if not fast.cpu_supports_bf16():
        with pytest.raises(PrecisionUnsupported, match="bf16 needs a CPU with avx512_bf16 or amx_bf16"):
            load_detector(exported, precision="bf16")
        return
    ran = run_worker(exported, tmp_path, precision="bf16")
    assert ran["backend"] == "openvino"
    assert ran["torch"] is False
    want = unfused_scores(exported, AUDIO)
    assert len(ran["scores"]) == len(want) == 12
    dp = np.max(np.abs(np.array(ran["scores"]) - want))
    assert 0 < dp <= fast.BF16_MAX_DP[fast.bf16_kind(backend_flags())]  # really bf16, and within the bound


def backend_flags() -> frozenset[str]:
    from hydrophone_worker.detector.cpu import read_cpu_flags

    return read_cpu_flags()


def test_openvino_scores_the_export_in_fp32_exactly(exported):
    fp32, _config = load_detector(exported, backend="openvino")
    assert fp32.backend == "openvino" and fp32.precision == "fp32"
    want = unfused_scores(exported, AUDIO)
    np.testing.assert_allclose(fp32.score_audio(AUDIO, RATE).window_scores, want, rtol=0, atol=1e-4)


def test_an_export_openvino_cannot_read_is_reported_as_unreadable(tmp_path):
    from hydrophone_worker.detector.openvino_engine import openvino_session

    broken = tmp_path / backend.MODEL_FILE
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(backend.ExportUnreadable, match="OpenVINO cannot load it"):
        openvino_session(broken, threads=1, precision="fp32")


def test_bf16_on_a_cpu_without_it_is_refused_before_any_weights_are_read(exported, monkeypatch):
    monkeypatch.setattr(fast, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(modeldir, "read_state_dict", lambda *a, **k: pytest.fail("weights were read"))
    with pytest.raises(PrecisionUnsupported, match="bf16 needs a CPU with avx512_bf16 or amx_bf16"):
        load_detector(exported, precision="bf16")


def test_an_onnx_export_runs_only_in_an_export_engine():
    with pytest.raises(backend.BackendUnsupported, match="runs in onnxruntime or openvino, not torch"):
        fast.fast_forward(backend.OnnxExport(Path("network.onnx")), "fp32", backend="torch")


def test_the_export_identity_is_that_of_the_weights_file_bytes(model_dir):
    config = modeldir.read_config(model_dir)
    weights = model_dir / modeldir.SAFETENSORS_FILE
    before = export.identity_of(weights, config)
    assert before.input_shape == (1, frontend.N_MELS, frontend.FRAMES)
    assert before.weights_sha256 == export.file_sha256(weights)
    save_file(demo_weights(7), weights, metadata={"format": "pt"})
    after = export.identity_of(weights, config)
    assert after.weights_sha256 != before.weights_sha256 and after.key != before.key


def test_config_validation_knows_every_architecture_without_torch():
    assert sorted(modeldir.ARCHITECTURE_NAMES) == sorted(network.ARCHITECTURES)


def test_the_worker_image_bakes_the_models_export_after_copying_it_in():
    lines = (REPO / "Dockerfile.worker").read_text().splitlines()
    copy = next(i for i, line in enumerate(lines) if line.startswith("COPY --from=model /model"))
    target = lines[copy].split()[-1]
    export_step = next(i for i, line in enumerate(lines) if f"model export-onnx {target}" in line)
    user = next(i for i, line in enumerate(lines) if line.startswith("USER"))
    assert copy < export_step < user


def test_the_image_self_check_and_an_exported_model_run_without_any_c_compiler(exported, tmp_path):
    """As the image runs them: only the venv on PATH, no compiler to find (the image ships none)."""
    bin_dir = str(Path(sys.executable).parent)
    assert not [c for c in ("cc", "c++", "gcc", "g++", "clang", "clang++") if shutil.which(c, path=bin_dir)]
    env = {k: v for k, v in os.environ.items() if k not in {"CC", "CXX", backend.BACKEND_ENV}}
    env["PATH"] = bin_dir
    check = subprocess.run(
        [sys.executable, "-m", "hydrophone_worker.detector.backend"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr
    assert "onnxruntime self-check: logits within" in check.stdout
    assert "openvino self-check: logits within" in check.stdout
    clip = tmp_path / "clip.wav"
    sf.write(clip, AUDIO, RATE, subtype="PCM_16")
    detected = subprocess.run(
        [f"{bin_dir}/hydrophone-worker", "detect", "--model", str(exported), "--json", str(clip)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert detected.returncode == 0, detected.stderr
    assert "is stale" not in detected.stderr
    got = [segment["confidence"] for segment in json.loads(detected.stdout)["segments"]]
    want = unfused_scores(exported, *decode(clip))
    assert len(got) == 12
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
