"""Inference-only forms of a network: batch norm folded into the convolutions, channels-last, optional bf16.

Folding removes one full pass over every activation per BatchNorm2d and channels-last is the layout
oneDNN's convolutions run natively, so fp32 gets faster with scores within 1e-5 of the unfused network.
bfloat16 halves the work again, but only on CPUs with bf16 dot-product instructions: elsewhere it is
emulated and some 20x slower than fp32, so it is refused there rather than silently made slow.
Opt-in: torch.compile (inductor with freezing: weights become constants, convolutions prepacked for oneDNN)
is another ~25% per window at identical scores, but needs a C++ compiler and costs tens of seconds once per
process, so only long-running workers ask for it. torch.jit (deprecated) is not used.
For fp32 the folded network can instead run in ONNX Runtime, for bf16 in OpenVINO (backend.py): no compiler.
torch is imported only when a network is folded: the precision checks here serve the torch-free ONNX path too.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from hydrophone_worker import WorkerError
from hydrophone_worker.detector.cpu import apply_torch_threads, cpu_supports_bf16
from hydrophone_worker.detector.frontend import FRAMES, N_MELS

if TYPE_CHECKING:
    import torch
    from torch import fx, nn

    from hydrophone_worker.detector.backend import Backend, OnnxExport

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")

# Worst per-window |P(call) difference| of bf16 against fp32, measured on stand-in (seeded random) weights.
# With AMX (Intel Xeon family 6 model 167, 2026-12-02), OpenVINO (the bf16 engine auto picks): 0.015 on the
# demo network (models/demo, 24 seeded 13 s clips), 8.2e-4 to 1.1e-3 on a ResNet-50 (the tests' and the
# benchmark's 60 s clips); PyTorch's eager bf16 there: 0.017 / 9.3e-4 (0.049 in issue 12's run). With
# avx512_bf16 alone (AMD Zen 5): 0.0019 on the ResNet-50 in PyTorch; OpenVINO and the demo network not yet
# measured there, so the same bound is stated. Not yet measured on the published weights: fp32 stays the
# default.
BF16_MAX_DP = {"avx512_bf16": 0.02, "amx_bf16": 0.02}
BF16_HELP = (
    "bf16 (CPUs with avx512_bf16/amx_bf16 only; runs in OpenVINO) takes ~80% less CPU than fp32 with AMX. "
    f"Per-window scores move by up to {BF16_MAX_DP['amx_bf16']}, measured on stand-in weights (worst 0.015 "
    "with AMX; no decision changed)."
)


def bf16_kind(flags: frozenset[str]) -> str:
    """Which BF16_MAX_DP entry applies to a CPU with these flags."""
    return "amx_bf16" if "amx_bf16" in flags else "avx512_bf16"


# (B, 1, N_MELS, FRAMES) float32 spectrograms -> (B, classes) float32 logits, numpy in and out: the ONNX
# engine never needs torch.
Forward = Callable[[np.ndarray], np.ndarray]

log = logging.getLogger(__name__)


class PrecisionUnsupported(WorkerError, ValueError):
    """bf16 asked for on a CPU without bf16 instructions, or a backend that cannot run the request."""


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known; use one of: {', '.join(PRECISIONS)}")
    if precision == "bf16" and not cpu_supports_bf16():
        raise PrecisionUnsupported(
            "precision bf16 needs a CPU with avx512_bf16 or amx_bf16 (not listed in /proc/cpuinfo here); "
            "use precision fp32"
        )
    return precision


def fold_batch_norms(network: nn.Module) -> fx.GraphModule:
    """An eval-mode copy of `network` with every Conv2d -> BatchNorm2d pair merged into one Conv2d.

    Traced with torch.fx so only true data-flow pairs are folded (a conv whose output also goes elsewhere
    keeps its BatchNorm); the original network is left untouched.
    """
    from torch import fx, nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    traced = fx.symbolic_trace(copy.deepcopy(network).eval())
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        conv = node.args[0]
        if not (
            isinstance(conv, fx.Node)
            and conv.op == "call_module"
            and isinstance(modules[conv.target], nn.Conv2d)
            and len(conv.users) == 1
        ):
            continue
        assert isinstance(conv.target, str)  # call_module targets are submodule paths
        traced.set_submodule(conv.target, fuse_conv_bn_eval(modules[conv.target], modules[node.target]))
        node.replace_all_uses_with(conv)
        traced.graph.erase_node(node)
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


def fast_forward(
    network: nn.Module | OnnxExport,
    precision: Precision,
    compile_batch: int | None = None,
    backend: Backend = "torch",
    threads: int = 1,
) -> Forward:
    """A callable (B, 1, H, W) float32 -> (B, 2) float32 logits running the folded network in `precision`.

    With `compile_batch`, the folded network is compiled now, once, for (compile_batch, 1, N_MELS, FRAMES)
    inputs; smaller batches are padded with zeros up to it, so the process never compiles a second shape.
    Backends onnxruntime (fp32 only) and openvino (bf16 or fp32) export the folded network once and run it
    on `threads` threads; an OnnxExport (a network exported before) runs in one of them, without torch.
    """
    from hydrophone_worker.detector import backend as engines  # backend imports this module

    if isinstance(network, engines.OnnxExport):
        return engines.open_export(network.path, backend, precision, threads)
    if backend in engines.EXPORT_ENGINES:
        return engines.exported_forward(
            network,
            (1, N_MELS, FRAMES),
            lambda path: engines.open_export(path, backend, precision, threads),
        )
    import torch

    apply_torch_threads()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # Module.to accepts memory_format at run time; its stub overloads do not list it.
    folded = fold_batch_norms(network).to(dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
    run = folded if compile_batch is None else _compiled(folded, compile_batch, dtype)

    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(dtype=dtype, memory_format=torch.channels_last)
            logits: np.ndarray = run(tensor).float().numpy()
        return logits

    return forward


def _compiled(
    folded: nn.Module, batch_size: int, dtype: torch.dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`folded` compiled by inductor for (batch_size, 1, N_MELS, FRAMES) inputs, compiled before returning.

    Every batch is copied into a fresh zeroed tensor made like the warm-up one (an inference tensor with
    channels-last strides), so dynamo's guards on shape, strides and dispatch keys always hold: a (B, 1, H, W)
    tensor counts as channels-last with either of two strides, and a partial batch is padded up to size.
    """
    import torch

    compiled = torch.compile(folded, dynamic=False, fullgraph=True)

    def fixed(batch: torch.Tensor) -> torch.Tensor:
        n = len(batch)
        full = torch.zeros(batch_size, 1, N_MELS, FRAMES, dtype=dtype).contiguous(
            memory_format=torch.channels_last
        )
        full[:n] = batch
        logits: torch.Tensor = compiled(full)[:n]
        return logits

    began = time.perf_counter()
    # Freezing set for this first (and only) compile; passed as torch.compile(options=...) it saved far less.
    with torch._inductor.config.patch(freezing=True), torch.inference_mode():  # the mode scoring runs in
        fixed(torch.zeros(batch_size, 1, N_MELS, FRAMES, dtype=dtype))
    log.info("detector network compiled for batches of %d in %.1f s", batch_size, time.perf_counter() - began)
    return fixed
