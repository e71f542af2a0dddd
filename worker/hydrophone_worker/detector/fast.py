"""Inference-only forms of a network: batch norm folded into the convolutions, channels-last, optional bf16.

Folding removes one full pass over every activation per BatchNorm2d and channels-last is the layout
oneDNN's convolutions run natively, so fp32 gets faster with scores within 1e-5 of the unfused network.
bfloat16 halves the work again, but only on CPUs with bf16 dot-product instructions: elsewhere it is
emulated and some 20x slower than fp32, so it is refused there rather than silently made slow.
torch.jit (deprecated) and torch.compile (needs a C++ toolchain and minutes of warm-up) are not used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from hydrophone_worker.detector.cpu import cpu_supports_bf16

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")

Forward = Callable[[torch.Tensor], torch.Tensor]


class PrecisionUnsupported(ValueError):
    """bf16 asked for on a CPU without bf16 instructions."""


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known; use one of: {', '.join(PRECISIONS)}")
    if precision == "bf16" and not cpu_supports_bf16():
        raise PrecisionUnsupported(
            "precision bf16 needs a CPU with avx512_bf16 or amx_bf16 (not listed in /proc/cpuinfo here); "
            "use precision fp32"
        )
    return precision  # type: ignore[return-value]


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """An eval-mode copy of `network` with every Conv2d -> BatchNorm2d pair merged into one Conv2d."""
    return fuse(network.eval())  # fuse() works on a deep copy; the original keeps its BatchNorms


def fast_forward(network: nn.Module, precision: Precision) -> Forward:
    """A callable (B, 1, H, W) float32 -> (B, 2) float32 logits running the folded network in `precision`."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    folded = fold_batch_norms(network).to(dtype=dtype, memory_format=torch.channels_last)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return folded(batch.to(dtype=dtype, memory_format=torch.channels_last)).float()

    return forward
