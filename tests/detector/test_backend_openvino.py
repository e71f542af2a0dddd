"""bf16 in OpenVINO: picked from the CPU flags, torch-free, and deciding as fp32 does on the test audio."""

from __future__ import annotations

import numpy as np
import pytest
from hydrophone_worker.detector import fast, openvino_engine
from hydrophone_worker.detector.backend import BF16_FLAGS, installed_engines, resolve_backend
from hydrophone_worker.detector.cpu import cpu_supports_bf16, read_cpu_flags
from hydrophone_worker.detector.fast import PrecisionUnsupported
from hydrophone_worker.detector.params import DetectionParams
from hydrophone_worker.detector.scoring import Detector

from .conftest import realistic_audio

# Three 60 s clips (29 windows each, as the worker scores them) and a short odd one (a partial batch).
CLIPS = [(60.0, seed) for seed in (0, 1, 2)] + [(13.0, 5)]


def test_the_compile_settings_are_one_unpinned_stream_in_the_requested_precision():
    assert openvino_engine.compile_config(1, "bf16") == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "INFERENCE_NUM_THREADS": "1",
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": "NO",
    }
    assert openvino_engine.compile_config(2, "fp32")["INFERENCE_PRECISION_HINT"] == "f32"


def test_auto_runs_bf16_in_openvino_on_this_cpu_when_it_has_bf16_instructions():
    flags = read_cpu_flags()
    if not flags & BF16_FLAGS:  # the benchmark CPUs have them; an AVX2-only runner checks the refusal
        with pytest.raises(PrecisionUnsupported, match="bf16 needs a CPU with avx512_bf16 or amx_bf16"):
            fast.check_precision("bf16")
        return
    assert resolve_backend(None, flags, "bf16", False, installed_engines(), {}) == "openvino"


def test_openvino_bf16_decides_as_fp32_on_the_test_audio_within_the_stated_bound(resnet):
    params = DetectionParams()
    if not cpu_supports_bf16():
        with pytest.raises(PrecisionUnsupported, match="bf16 needs a CPU with avx512_bf16 or amx_bf16"):
            Detector(resnet, params, precision="bf16")
        return
    fp32 = Detector(resnet, params, backend="onnxruntime")
    bf16 = Detector(resnet, params, precision="bf16")
    assert bf16.backend == "openvino"
    worst = 0.0
    for seconds, seed in CLIPS:
        audio = realistic_audio(48000, seconds, seed=seed)
        want, got = fp32.score_audio(audio, 48000), bf16.score_audio(audio, 48000)
        assert len(got.window_scores) == len(want.window_scores)
        worst = max(worst, float(np.max(np.abs(np.subtract(got.window_scores, want.window_scores)))))
        assert got.positive == want.positive
        assert [s.positive for s in got.spans] == [s.positive for s in want.spans]
    assert 0 < worst <= fast.BF16_MAX_DP[fast.bf16_kind(read_cpu_flags())]  # really bf16, and bounded
