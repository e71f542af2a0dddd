"""The network's engine: chosen from the CPU flags, exact in fp32, and runnable without a C++ compiler."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydrophone_worker.detector import backend, frontend
from hydrophone_worker.detector.backend import (
    BackendUnsupported,
    choose_backend,
    installed_engines,
    resolve_backend,
)
from hydrophone_worker.detector.cpu import cpu_flags, read_cpu_flags
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector

from .conftest import count_exports, randomize_batch_norms, realistic_audio

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "demo"

# Abridged /proc/cpuinfo flag lines of the CPUs the project has met.
ZEN5 = cpu_flags("flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw avx512_vnni avx512_bf16\n")
SAPPHIRE_RAPIDS = cpu_flags("flags\t\t: fpu sse2 avx fma avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
AVX2_EPYC = cpu_flags("flags\t\t: fpu sse2 avx fma avx2\n")
OLD_X86 = cpu_flags("flags\t\t: fpu sse2 sse4_2 avx\n")
NOT_X86: frozenset[str] = frozenset()  # e.g. arm64: its cpuinfo has `Features`, not `flags`
# Which optional engines are installed.
BOTH = frozenset({"onnxruntime", "openvino"})
ORT = frozenset({"onnxruntime"})
NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    ("flags", "precision", "compiled", "installed", "expected"),
    [
        (ZEN5, "fp32", False, BOTH, "onnxruntime"),
        (SAPPHIRE_RAPIDS, "fp32", False, BOTH, "onnxruntime"),
        (AVX2_EPYC, "fp32", False, BOTH, "onnxruntime"),
        (OLD_X86, "fp32", False, BOTH, "torch"),
        (NOT_X86, "fp32", False, BOTH, "torch"),
        (ZEN5, "bf16", False, ORT, "torch"),  # onnxruntime has no bf16 convolutions on x86
        (SAPPHIRE_RAPIDS, "bf16", False, ORT, "torch"),
        (ZEN5, "bf16", False, BOTH, "openvino"),  # avx512_bf16
        (SAPPHIRE_RAPIDS, "bf16", False, BOTH, "openvino"),  # AMX
        (AVX2_EPYC, "bf16", False, BOTH, "torch"),  # no bf16 instructions (check_precision refuses it)
        (SAPPHIRE_RAPIDS, "bf16", True, BOTH, "torch"),  # --compile is a torch path
        (ZEN5, "fp32", True, BOTH, "torch"),
        (ZEN5, "fp32", False, NONE, "torch"),  # onnxruntime not installed
        (ZEN5, "fp32", False, frozenset({"openvino"}), "torch"),  # openvino alone is not fp32's engine
    ],
)
def test_auto_picks_the_backend_from_the_cpu_flags(flags, precision, compiled, installed, expected):
    assert choose_backend(flags, precision, compiled, installed) == expected
    assert resolve_backend("auto", flags, precision, compiled, installed, {}) == expected
    assert resolve_backend(None, flags, precision, compiled, installed, {}) == expected


def test_the_environment_overrides_auto_and_an_explicit_choice_overrides_the_environment():
    env = {backend.BACKEND_ENV: "torch"}
    assert resolve_backend(None, ZEN5, "fp32", False, BOTH, env) == "torch"
    assert resolve_backend("onnxruntime", OLD_X86, "fp32", False, BOTH, env) == "onnxruntime"
    assert resolve_backend(None, ZEN5, "fp32", False, BOTH, {backend.BACKEND_ENV: ""}) == "onnxruntime"
    assert resolve_backend(None, ZEN5, "bf16", False, BOTH, env) == "torch"
    assert resolve_backend("openvino", ZEN5, "fp32", False, BOTH, env) == "openvino"
    openvino = {backend.BACKEND_ENV: "openvino"}
    assert resolve_backend(None, SAPPHIRE_RAPIDS, "bf16", False, BOTH, openvino) == "openvino"


@pytest.mark.parametrize(
    ("requested", "env", "precision", "compiled", "installed", "message"),
    [
        (
            None,
            {backend.BACKEND_ENV: "tensorrt"},
            "fp32",
            False,
            BOTH,
            "HYDROPHONE_DETECTOR_BACKEND 'tensorrt' is not known; use one of: auto, torch, onnxruntime, "
            "openvino",
        ),
        ("onnxruntime", {}, "bf16", False, BOTH, "backend onnxruntime runs fp32 only; use precision fp32"),
        ("onnxruntime", {}, "fp32", True, BOTH, "backend onnxruntime cannot be combined with compile"),
        ("onnxruntime", {}, "fp32", False, NONE, r"onnxruntime package is not installed \(pip install"),
        ("openvino", {}, "bf16", True, BOTH, "backend openvino cannot be combined with compile"),
        ("openvino", {}, "bf16", False, ORT, r"openvino package is not installed \(pip install"),
        (
            None,
            {backend.BACKEND_ENV: "openvino"},
            "fp32",
            False,
            ORT,
            r"HYDROPHONE_DETECTOR_BACKEND openvino: the openvino package is not installed",
        ),
    ],
)
def test_impossible_backends_are_refused_with_the_fix(
    requested, env, precision, compiled, installed, message
):
    with pytest.raises(BackendUnsupported, match=message):
        resolve_backend(requested, ZEN5, precision, compiled, installed, env)


def test_openvino_bf16_is_refused_on_a_cpu_without_bf16_instructions():
    # OpenVINO would ignore its bf16 hint there and silently compute in f32.
    message = "openvino runs bf16 only on CPUs with avx512_bf16 or amx_bf16"
    with pytest.raises(BackendUnsupported, match=message):
        resolve_backend("openvino", AVX2_EPYC, "bf16", False, BOTH, {})


def test_both_engines_are_installed_with_the_worker_extra():
    assert installed_engines() == BOTH


def unfused_scores(network: torch.nn.Module, signal: np.ndarray, params: DetectionParams) -> np.ndarray:
    starts = frontend.window_starts(len(signal), params.window_s, params.hop_s)
    batch = torch.from_numpy(frontend.spectrograms(signal, starts, params.window_s))
    with torch.inference_mode():
        return torch.softmax(network.eval()(batch), dim=1)[:, 1].numpy()


def test_onnxruntime_scores_are_within_1e_4_of_the_unfused_network_for_full_and_partial_batches(resnet):
    # 13 s at 3 s / 2 s: 6 windows = batches of 4 and 2; then one window alone (a batch of 1).
    params = DetectionParams(max_batch_size=4)
    detector = Detector(resnet, params, backend="onnxruntime")
    assert detector.backend == "onnxruntime"
    for seconds, windows in ((13.0, 6), (3.5, 1)):
        audio = realistic_audio(48000, seconds, seed=5)
        got = np.array(detector.score_audio(audio, 48000).window_scores)
        want = unfused_scores(resnet, frontend.prepare(audio, 48000, params.normalize), params)
        assert len(got) == windows
        assert windows == 1 or np.ptp(want) > 1e-3  # the scores vary, so agreement means something
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    audio = realistic_audio(48000, 13.0, seed=5)
    first, second = detector.score_audio(audio, 48000), detector.score_audio(audio, 48000)
    assert first.window_scores == second.window_scores


def test_a_bad_backend_in_the_environment_stops_the_worker_with_one_line(monkeypatch):
    from hydrophone_worker.config import parse_config
    from hydrophone_worker.service.app import WorkerSetupError, load_scorer

    monkeypatch.setenv(backend.BACKEND_ENV, "cuda")
    config = parse_config({"stream": {"streamId": "rpi_orcasound_lab"}, "model": {"dir": str(DEMO_MODEL)}})
    with pytest.raises(WorkerSetupError, match="HYDROPHONE_DETECTOR_BACKEND 'cuda' is not known"):
        load_scorer(config)


def test_the_worker_image_path_runs_without_any_c_compiler(tmp_path):
    """`detect` as the image runs it: only the venv on PATH, no cc/gcc/g++/clang to find; same scores."""
    clip = tmp_path / "clip.wav"
    sf.write(clip, realistic_audio(48000, 6.0, seed=7), 48000, subtype="PCM_16")
    bin_dir = str(Path(sys.executable).parent)
    assert not [c for c in ("cc", "c++", "gcc", "g++", "clang", "clang++") if shutil.which(c, path=bin_dir)]
    env = {k: v for k, v in os.environ.items() if k not in {"CC", "CXX", backend.BACKEND_ENV}}
    env["PATH"] = bin_dir

    def scores(backend_name: str) -> list[float]:
        flags = ["--backend", backend_name, str(clip)]
        result = subprocess.run(
            [f"{bin_dir}/hydrophone-worker", "detect", "--model", str(DEMO_MODEL), "--json", *flags],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return [s["confidence"] for s in json.loads(result.stdout)["segments"]]

    onnx, eager = scores("onnxruntime"), scores("torch")
    assert len(onnx) == 5
    np.testing.assert_allclose(onnx, eager, rtol=0, atol=1e-5)


def test_the_image_build_self_check_runs_the_onnx_path():
    """Dockerfile.worker runs `python -m hydrophone_worker.detector.backend` at build time."""
    assert backend.self_check("onnxruntime", "fp32") <= 1e-5
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile.worker").read_text()
    assert "python -m hydrophone_worker.detector.backend" in dockerfile


def test_the_image_build_self_check_covers_openvino_in_fp32_and_in_bf16_where_the_cpu_has_it():
    flags = read_cpu_flags()
    lines = backend.self_check_all(flags)
    assert lines[:2] == [line for line in lines if line.endswith("(fp32)")]
    assert lines[1].startswith("openvino self-check: logits within")
    assert len(lines) == (3 if flags & backend.BF16_FLAGS else 2)
    assert len(backend.self_check_all(AVX2_EPYC)) == 2  # a build CPU without bf16: OpenVINO in fp32 only


def test_the_image_build_fails_when_an_engine_disagrees_with_pytorch(monkeypatch):
    monkeypatch.setattr(backend, "self_check", lambda engine, precision: 0.5)
    with pytest.raises(
        SystemExit, match=r"onnxruntime self-check \(fp32\): logits differ from PyTorch by 5\.00e-01"
    ):
        backend.self_check_all(AVX2_EPYC)


def demo_network(seed: int) -> torch.nn.Module:
    from hydrophone_worker.detector.demo_network import DemoCNN

    torch.manual_seed(seed)
    return randomize_batch_norms(DemoCNN(), seed)


def logits(run) -> torch.Tensor:
    """`run` (a numpy forward or an eval-mode network) on a fixed batch of three random spectrograms."""
    batch = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0)) * 20
    if not isinstance(run, torch.nn.Module):
        return torch.from_numpy(run(batch.numpy()))
    with torch.inference_mode():
        return run(batch)


SHAPE = (1, frontend.N_MELS, frontend.FRAMES)


def onnxruntime_engine(path: Path) -> backend.Forward:
    return backend.onnxruntime_session(path, threads=1)


def test_an_exported_network_is_reused_from_the_cache_and_keyed_by_its_weights(tmp_path, monkeypatch):
    exports = count_exports(monkeypatch)
    first = backend.exported_forward(demo_network(1), SHAPE, onnxruntime_engine, cache=tmp_path)
    again = backend.exported_forward(demo_network(1), SHAPE, onnxruntime_engine, cache=tmp_path)
    assert len(exports) == 1  # the second start loaded the file
    np.testing.assert_array_equal(
        again(np.ones((1, *SHAPE), np.float32)), first(np.ones((1, *SHAPE), np.float32))
    )
    other = demo_network(2)
    backend.exported_forward(other, SHAPE, onnxruntime_engine, cache=tmp_path)
    assert len(exports) == 2  # other weights, another file: never a stale network
    assert len(list(tmp_path.glob(f"*/{backend.MODEL_FILE}"))) == 2
    assert not list(tmp_path.glob(".export-*"))  # no half-written exports left behind
    with torch.inference_mode():
        torch.testing.assert_close(
            logits(first),
            demo_network(1)(torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(0)) * 20),
            rtol=0,
            atol=1e-5,
        )


def test_an_unreadable_cached_file_is_exported_again(tmp_path, monkeypatch):
    network = demo_network(3)
    backend.exported_forward(network, SHAPE, onnxruntime_engine, cache=tmp_path)
    (cached,) = tmp_path.glob(f"*/{backend.MODEL_FILE}")
    cached.write_bytes(b"not an onnx model")
    exports = count_exports(monkeypatch)
    forward = backend.exported_forward(network, SHAPE, onnxruntime_engine, cache=tmp_path)
    assert len(exports) == 1
    torch.testing.assert_close(logits(forward), logits(network), rtol=0, atol=1e-5)


def test_an_unwritable_cache_costs_an_export_not_a_failure(tmp_path, caplog):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    network = demo_network(4)
    forward = backend.exported_forward(network, SHAPE, onnxruntime_engine, cache=blocker / "onnx")
    assert "is not usable" in caplog.text
    torch.testing.assert_close(logits(forward), logits(network), rtol=0, atol=1e-5)
