"""OrcaHello's network: torchvision-layout ResNet-50 with one input channel and fastai's concat-pool head.

Written out here (no torchvision: it does not import beside our CPU torch) so that the state-dict keys
are exactly those of the 2026 `orcahello-srkw-detector-v1` release: `model.conv1.weight`, `model.bn1.*`,
`model.layer1..4.*`, `model.fc.{1,3,5,7}.*`.
"""

from __future__ import annotations

import torch
from torch import nn

from hydrophone_worker.detector.demo_network import DemoCNN


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: torch.Tensor = self.relu(out + identity)
        return result


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: [max, avg] concatenated along channels (max first)."""

    def __init__(self) -> None:
        super().__init__()
        self.mp = nn.AdaptiveMaxPool2d(1)
        self.ap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], dim=1)


class ResNet50Backbone(nn.Module):
    def __init__(self, in_channels: int = 1, layers: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.pool = AdaptiveConcatPool2d()
        self.fc = nn.Sequential(
            nn.Flatten(),  # fc.0
            nn.BatchNorm1d(4096),  # fc.1
            nn.Dropout(0.25),  # fc.2
            nn.Linear(4096, 512),  # fc.3
            nn.ReLU(inplace=True),  # fc.4
            nn.BatchNorm1d(512),  # fc.5
            nn.Dropout(0.5),  # fc.6
            nn.Linear(512, 2),  # fc.7
        )

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits: torch.Tensor = self.fc(self.pool(x))
        return logits


class OrcaHelloResNet50(nn.Module):
    """Input (B, 1, 256, 312) dB mel spectrograms; output logits (B, 2). P(call) = softmax[:, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.model = ResNet50Backbone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(x)
        return logits


# `model.architecture` in a model directory's config.yaml -> constructor. The worker-service issue adds
# a small demo network here.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "resnet50": OrcaHelloResNet50,
    "demo-cnn": DemoCNN,
}


def build_network(architecture: str) -> nn.Module:
    try:
        return ARCHITECTURES[architecture]()
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"model.architecture {architecture!r} is not known; use one of: {known}") from None
