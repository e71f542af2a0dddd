"""Shared detector test material: realistic audio, a seeded ResNet-50 with meaningful BatchNorm statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydrophone_worker.detector import backend
from hydrophone_worker.detector.network import build_network
from torch import nn


def realistic_audio(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Hydrophone-like mono float32: coloured noise, call-like harmonic sweeps, clicks, a silent stretch."""
    rng = np.random.default_rng(seed)
    n = round(rate * seconds)
    t = np.arange(n) / rate
    white = rng.standard_normal(n)
    # Mostly low-frequency noise, like ship and water noise under a hydrophone.
    noise = np.convolve(white, np.ones(8) / 8, mode="same") * 0.05 + white * 0.005
    sweep_hz = 600 + 900 * np.abs(np.sin(2 * np.pi * t / 3.0))
    phase = 2 * np.pi * np.cumsum(sweep_hz) / rate
    envelope = (np.sin(2 * np.pi * t / 2.5) > 0.3).astype(float)
    calls = sum(0.2 / k * np.sin(k * phase) for k in range(1, 6)) * envelope
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, size=max(1, int(seconds * 5)))] = 0.5
    audio = noise + calls + clicks
    audio[int(n * 0.4) : int(n * 0.55)] = 0.0  # a dropout: digital silence
    return audio.astype(np.float32)


def randomize_batch_norms(network: nn.Module, seed: int) -> nn.Module:
    """Default running stats (mean 0, var 1) make a random ResNet's outputs degenerate; vary them (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
    return network.eval()


def seeded_resnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batch_norms(build_network("resnet50"), seed)


@pytest.fixture(scope="session")
def resnet() -> nn.Module:
    return seeded_resnet(0)


def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths ONNX exports are written to from now on (each export still happens)."""
    exports: list[Path] = []
    real = backend.export_onnx

    def counting(folded: nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
        exports.append(path)
        real(folded, input_shape, path)

    monkeypatch.setattr(backend, "export_onnx", counting)
    return exports
