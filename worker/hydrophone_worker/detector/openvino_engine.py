"""The exported network (the same network.onnx ONNX Runtime runs) in OpenVINO Runtime's CPU plugin.

Chosen for bf16 (backend.py): OpenVINO converts the fp32 export to bf16 when it compiles it, prepacks the
weights for oneDNN's AMX / avx512_bf16 kernels and fuses the residual add and ReLU into the convolutions.
Measured on one core of an AMX Xeon (benchmarks/detector.py): ~0.37 CPU-s for the 29 windows of a 60 s
clip (~1000 GFLOP/s, close to the AMX bf16 matmul ceiling), against 1.1-1.3 s in PyTorch's eager bf16, and
without importing torch. Its f32 mode is exact too but no faster than ONNX Runtime, so fp32 stays there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hydrophone_worker.detector.backend import ExportUnreadable
from hydrophone_worker.detector.fast import Forward, Precision

if TYPE_CHECKING:
    import openvino as ov

# OpenVINO's names for the precisions it computes in; bf16 needs avx512_bf16 or AMX (refused elsewhere).
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}

log = logging.getLogger(__name__)


def compile_config(threads: int, precision: Precision) -> dict[str, str]:
    """One stream of `threads` threads, latency mode, in `precision`; no core pinning.

    The worker shares its node: pinning the inference thread to one core would fight the scheduler and the
    cgroup quota (cpu.py) instead of obeying them.
    """
    return {
        "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision],
        "INFERENCE_NUM_THREADS": str(threads),
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": "NO",
    }


def compile_export(path: Path, threads: int, precision: Precision) -> ov.CompiledModel:
    """`path` compiled for the CPU; raises ExportUnreadable for a file OpenVINO cannot read."""
    import openvino as ov

    try:
        return ov.Core().compile_model(str(path), "CPU", compile_config(threads, precision))
    except Exception as exc:  # OpenVINO raises RuntimeError and its own types for unreadable models
        raise ExportUnreadable(f"OpenVINO cannot load it: {exc}") from exc


def openvino_session(path: Path, threads: int, precision: Precision) -> Forward:
    """The exported network at `path` in `precision` on `threads` threads: numpy in and out, no torch."""
    began = time.perf_counter()
    compiled = compile_export(path, threads, precision)
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def forward(batch: np.ndarray) -> np.ndarray:
        # share_outputs=False (the default): the logits are a copy, not a view of the request's buffer.
        result = request.infer({0: np.ascontiguousarray(batch, np.float32)})
        logits: np.ndarray = np.asarray(result[output], np.float32)
        return logits

    log.info(
        "detector network %s ready in OpenVINO (%s) in %.1f s", path, precision, time.perf_counter() - began
    )
    return forward
