"""HRNetV2-W48 trunk, laid out so its ``state_dict`` keys equal the official checkpoints'.

The trunk keeps four parallel branches (strides 4, 8, 16, 32; widths 48, 96, 192, 384),
exchanges information between them after every module by summation, and finally upsamples
every branch to stride 4 and concatenates them: ``(B, 720, ceil(h/4), ceil(w/4))``.

Module names (``conv1``, ``layer1``, ``transition1``, ``stage2.0.branches.0.0.conv1``,
``stage2.0.fuse_layers.1.0.0.0`` ...) follow the released checkpoints exactly so that they load
with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-5


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns ``x`` ``(B, C, h, w)`` bilinearly resized (``align_corners=False``) to ``size``."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class HRNetConfig:
    """Hyper-parameters of the HRNetV2 trunk (defaults: W48 as in the released models).

    Attributes:
        stem_channels: width of the two stride-2 stem convs.
        layer1_planes: bottleneck planes of layer1 (its output is 4x that).
        layer1_blocks: bottlenecks in layer1.
        branch_channels: widths of the four branches (strides 4, 8, 16, 32).
        stage_modules: modules in stages 2, 3 and 4.
        blocks_per_branch: BasicBlocks per branch in every module.
    """

    stem_channels: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    branch_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    blocks_per_branch: int = 4

    @property
    def out_channels(self) -> int:
        """Returns the width of the concatenated output (720 for W48)."""
        return sum(self.branch_channels)


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN with an identity shortcut: ``(B, C, h, w)`` -> ``(B, C, h, w)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.bn1 = _bn(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = _bn(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``relu(x + bn2(conv2(relu(bn1(conv1(x))))))``."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 expansion) residual block, with a 1x1 conv+BN projection shortcut
    when the width changes: ``(B, C_in, h, w)`` -> ``(B, 4 * planes, h, w)``."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = _bn(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), _bn(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the block's ``(B, 4 * planes, h, w)`` output."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _down_chain(in_ch: int, out_ch: int, steps: int) -> nn.Sequential:
    """Returns ``steps`` stride-2 conv3x3+BN stages (ReLU after all but the last); only the
    last changes the width from ``in_ch`` to ``out_ch``."""
    stages: list[nn.Module] = []
    for k in range(steps):
        if k == steps - 1:
            stages.append(nn.Sequential(_conv3x3(in_ch, out_ch, 2), _bn(out_ch)))
        else:
            stages.append(
                nn.Sequential(_conv3x3(in_ch, in_ch, 2), _bn(in_ch), nn.ReLU(inplace=True))
            )
    return nn.Sequential(*stages)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all fusion.

    ``forward`` maps a list of ``n`` tensors ``(B, C_i, h_i, w_i)`` to a list of ``n`` tensors
    of the same shapes. Output ``i`` is ``relu(sum_j f_ij(x_j))`` where ``f_ii`` is the identity,
    ``f_ij`` for ``j > i`` is 1x1 conv+BN then bilinear upsampling to branch ``i``'s size, and
    for ``j < i`` a chain of ``i - j`` stride-2 3x3 conv+BN.
    """

    def __init__(self, channels: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c) for _ in range(blocks)]) for c in channels
        )
        n = len(channels)
        fuse: list[nn.ModuleList] = []
        for i in range(n):
            row: list[nn.Module] = []
            for j in range(n):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, bias=False), _bn(channels[i])
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:
                    row.append(_down_chain(channels[j], channels[i], i - j))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Returns the fused ``n`` branch outputs (same shapes as the inputs)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            size = (int(xs[i].shape[-2]), int(xs[i].shape[-1]))
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                if j == i:
                    y = y + xs[j]
                elif j > i:
                    y = y + upsample_to(row[j](xs[j]), size)
                else:
                    y = y + row[j](xs[j])
            fused.append(self.relu(y))
        return fused


def _transition(prev: tuple[int, ...], new: tuple[int, ...]) -> nn.ModuleList:
    """Returns the per-branch adapters from a stage with widths ``prev`` to one with ``new``.

    Existing branches get a 3x3 conv+BN+ReLU when their width changes (else identity); each
    new branch is a stride-2 3x3 conv+BN+ReLU from the last previous branch.
    """
    layers: list[nn.Module] = []
    for i, out_ch in enumerate(new):
        if i < len(prev):
            if prev[i] == out_ch:
                layers.append(nn.Identity())
            else:
                layers.append(
                    nn.Sequential(_conv3x3(prev[i], out_ch), _bn(out_ch), nn.ReLU(inplace=True))
                )
        else:
            src = prev[-1]
            layers.append(
                nn.Sequential(
                    nn.Sequential(_conv3x3(src, out_ch, 2), _bn(out_ch), nn.ReLU(inplace=True))
                )
            )
    return nn.ModuleList(layers)


class HRNetV2(nn.Module):
    """HRNetV2 trunk: ``(B, 3, h, w)`` -> ``(B, 720, ceil(h/4), ceil(w/4))`` for W48."""

    def __init__(self, cfg: HRNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or HRNetConfig()
        c = self.cfg
        self.conv1 = _conv3x3(3, c.stem_channels, 2)
        self.bn1 = _bn(c.stem_channels)
        self.conv2 = _conv3x3(c.stem_channels, c.stem_channels, 2)
        self.bn2 = _bn(c.stem_channels)
        self.relu = nn.ReLU(inplace=True)
        blocks = [Bottleneck(c.stem_channels, c.layer1_planes)]
        width = c.layer1_planes * Bottleneck.expansion
        blocks += [Bottleneck(width, c.layer1_planes) for _ in range(c.layer1_blocks - 1)]
        self.layer1 = nn.Sequential(*blocks)
        widths = c.branch_channels
        self.transition1 = _transition((width,), widths[:2])
        self.stage2 = self._stage(widths[:2], c.stage_modules[0])
        self.transition2 = _transition(widths[:2], widths[:3])
        self.stage3 = self._stage(widths[:3], c.stage_modules[1])
        self.transition3 = _transition(widths[:3], widths[:4])
        self.stage4 = self._stage(widths[:4], c.stage_modules[2])

    def _stage(self, widths: tuple[int, ...], modules: int) -> nn.Sequential:
        return nn.Sequential(
            *[HighResolutionModule(widths, self.cfg.blocks_per_branch) for _ in range(modules)]
        )

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(transition):
            out.append(layer(xs[i] if i < len(xs) else xs[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, 720, h/4, w/4)`` concatenation of the four branches at stride 4."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self._apply_transition(self.transition1, [x])
        xs = self.stage2(xs)
        xs = self._apply_transition(self.transition2, xs)
        xs = self.stage3(xs)
        xs = self._apply_transition(self.transition3, xs)
        xs = self.stage4(xs)
        size = (int(xs[0].shape[-2]), int(xs[0].shape[-1]))
        return torch.cat([xs[0], *[upsample_to(t, size) for t in xs[1:]]], dim=1)
