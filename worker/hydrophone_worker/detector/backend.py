"""Which engine runs the folded network: PyTorch (oneDNN) or ONNX Runtime, chosen from the CPU's flags.

Measured on one core (benchmarks/detector.py): for fp32, ONNX Runtime's CPU kernels (MLAS: prepacked
weights, blocked-layout convolutions with the residual add and ReLU fused) need 40-45% less CPU per
window than PyTorch's eager oneDNN path on AVX-512 CPUs (AMD Zen 5, Intel Sapphire Rapids), at scores
within 1e-6 of the unfused network, and without the C++ compiler torch.compile needs. bf16 stays on
PyTorch: ONNX Runtime's x86 CPU kernels have no bf16 convolutions. The choice is a pure function of the
flags (never a benchmark at start-up); `HYDROPHONE_DETECTOR_BACKEND` or `detect --backend` overrides it.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Literal

import torch
from torch import nn

from hydrophone_worker.detector.fast import PrecisionUnsupported

Backend = Literal["torch", "onnxruntime"]
BACKEND_CHOICES: tuple[str, ...] = ("auto", "torch", "onnxruntime")
BACKEND_ENV = "HYDROPHONE_DETECTOR_BACKEND"
# MLAS's fast x86 kernels (the ones measured) need AVX2 with FMA at least; AVX-512 ones are picked by itself.
ONNXRUNTIME_FLAGS = frozenset({"avx2", "fma"})

Forward = Callable[[torch.Tensor], torch.Tensor]
INPUT, OUTPUT = "spectrograms", "logits"

log = logging.getLogger(__name__)


class BackendUnsupported(PrecisionUnsupported):
    """A backend that is unknown, not installed, or cannot run the requested precision/compile setting.

    A PrecisionUnsupported, so every caller that turns that into a clean error line handles this too.
    """


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def choose_backend(
    flags: Collection[str], precision: str, compiled: bool, onnxruntime_available: bool
) -> Backend:
    """The engine for `auto`: ONNX Runtime for fp32 on AVX2+FMA CPUs when installed, else PyTorch."""
    if precision != "fp32" or compiled or not onnxruntime_available:
        return "torch"
    return "onnxruntime" if set(flags) >= ONNXRUNTIME_FLAGS else "torch"


def resolve_backend(
    requested: str | None,
    flags: Collection[str],
    precision: str,
    compiled: bool,
    onnxruntime_available: bool,
    env: Mapping[str, str],
) -> Backend:
    """`requested` checked and resolved; None = the environment's HYDROPHONE_DETECTOR_BACKEND, else auto."""
    source = "backend"
    if requested is None:
        requested, source = env.get(BACKEND_ENV, "auto") or "auto", BACKEND_ENV
    if requested not in BACKEND_CHOICES:
        raise BackendUnsupported(
            f"{source} {requested!r} is not known; use one of: {', '.join(BACKEND_CHOICES)}"
        )
    if requested == "auto":
        return choose_backend(flags, precision, compiled, onnxruntime_available)
    if requested == "onnxruntime":
        if precision != "fp32":
            raise BackendUnsupported(
                f"{source} onnxruntime runs fp32 only; use precision fp32, or backend torch for {precision}"
            )
        if compiled:
            raise BackendUnsupported(f"{source} onnxruntime cannot be combined with compile; drop one")
        if not onnxruntime_available:
            raise BackendUnsupported(
                f"{source} onnxruntime: the onnxruntime package is not installed "
                "(pip install 'hydrophone-operator[worker]'); or use backend torch"
            )
    return requested  # type: ignore[return-value]


def export_onnx(folded: nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """`folded` (fp32, eval) as an ONNX model with a dynamic batch axis, serialised in memory.

    torch.export based (the TorchScript exporter is deprecated); no compiler involved. A few seconds once
    per process: the worker exports at start-up, so a model directory needs nothing besides its weights.
    """
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter warns about torchvision ops it cannot register (torchvision is not installed, on purpose).
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                folded,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch},),
                optimize=True,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    return program.model_proto.SerializeToString()


def onnxruntime_forward(folded: nn.Module, input_shape: tuple[int, int, int], threads: int) -> Forward:
    """A (B, *input_shape) float32 -> (B, classes) logits callable running `folded` in ONNX Runtime."""
    import onnxruntime as ort

    began = time.perf_counter()
    model = export_onnx(folded, input_shape)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn CPU between batches: the worker pays for CPU-seconds, not latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    del model
    log.info("detector network exported to ONNX Runtime in %.1f s", time.perf_counter() - began)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        array = batch.to(dtype=torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run([OUTPUT], {INPUT: array})[0])

    return forward
