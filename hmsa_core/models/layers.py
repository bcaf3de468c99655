"""Small building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, relu: bool = True
) -> nn.Sequential:
    """Returns conv(kernel, stride, 'same' padding, no bias) + BatchNorm (+ ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
