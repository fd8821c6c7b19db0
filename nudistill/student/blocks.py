"""Building blocks of the student CNNs: conv-norm-act, squeeze-and-excitation, inverted residuals.

MobileNetV2 (Sandler et al. 2018) inverted residuals with squeeze-and-excitation (Hu et al. 2018), as in
the paper's baseline student. The norm layer is a choice: BatchNorm folds into the convolution at
export (free at inference), GroupNorm does not but has no running statistics to lag
(BatchNorm statistics lag the weights in short runs: evaluation at chance while the training loss was tiny).
"""

from __future__ import annotations

import torch
from torch import nn


def make_norm(kind: str, channels: int, momentum: float = 0.1) -> nn.Module:
    """A norm layer by name: ``bn`` (BatchNorm2d), ``gn`` (GroupNorm, <= 8 groups) or ``none``."""
    if kind == "bn":
        return nn.BatchNorm2d(channels, momentum=momentum)
    if kind == "gn":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``value`` (MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias when normalised) + norm + ReLU6 (or no activation)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 norm: str = "bn", momentum: float = 0.1, act: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=norm == "none"),
                                   make_norm(norm, cout, momentum)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global mean -> bottleneck -> sigmoid gate on each channel."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = make_divisible(channels / reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 (stride) -> [SE] -> project (1x1, linear); residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, se: bool, norm: str, momentum: float):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvNormAct(cin, hidden, 1, norm=norm, momentum=momentum))
        layers.append(ConvNormAct(hidden, hidden, 3, stride, groups=hidden, norm=norm, momentum=momentum))
        if se:
            layers.append(SqueezeExcite(hidden))
        layers.append(ConvNormAct(hidden, cout, 1, norm=norm, momentum=momentum, act=False))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)
