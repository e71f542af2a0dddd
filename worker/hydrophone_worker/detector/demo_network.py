"""A small CNN for the demo: the same (B, 1, 256, 312) dB mel input and (B, 2) logits as the ResNet-50.

It is trained by tools/train_demo_model.py on the simulator's synthetic calls, so `make demo` runs the
whole worker in seconds on a laptop CPU. It knows nothing about real killer whales: use the published
`orcahello-srkw-detector-v1` weights (architecture resnet50) for real streams.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(inputs: int, outputs: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class DemoCNN(nn.Module):
    """~17 k parameters: four conv blocks, [max, mean] pooling over time and frequency, a two-layer head."""

    def __init__(self) -> None:
        super().__init__()
        # The frontend's dB values are unnormalised (the ResNet-50 sees them raw too); a BatchNorm on the
        # input learns the scale instead of a hand-picked constant.
        self.input_norm = nn.BatchNorm2d(1)
        self.features = nn.Sequential(
            _block(1, 8, 5, stride=2),  # -> 8 x 64 x 78
            _block(8, 16, 3),  # -> 16 x 32 x 39
            _block(16, 32, 3),  # -> 32 x 16 x 19
            _block(32, 32, 3),  # -> 32 x 8 x 9
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(self.input_norm(x))
        # max: a call anywhere in the window counts; mean: the background it stands out from
        logits: torch.Tensor = self.head(torch.cat([maps.amax(dim=(2, 3)), maps.mean(dim=(2, 3))], dim=1))
        return logits
