"""``lite``: a compact CPU-friendly HMSA segmenter with a deliberately limited receptive field.

The trunk has a stride-4 branch (fine detail) and a stride-8 branch (context), fused at stride 4.
Its receptive field is about 55 input pixels, so a single scale cannot both see thin objects
and the layout of large regions: exactly the trade-off hierarchical attention resolves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from hmsa_core.labels import LabelSet
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, resize
from hmsa_core.models.layers import conv_bn_relu
from hmsa_core.models.registry import register


@dataclass(frozen=True)
class LiteConfig:
    """Hyper-parameters of the ``lite`` segmenter.

    Attributes:
        stem_channels: width of the stride-2 stem conv.
        fine_channels: width of the stride-4 branch.
        coarse_channels: width of the stride-8 branch.
        fine_blocks: 3x3 conv layers in the stride-4 branch after its entry conv.
        coarse_blocks: 3x3 conv layers in the stride-8 branch after its entry conv.
        head_channels: width of the fused features the heads read.
        attn_channels: hidden width of the scale-attention head.
    """

    stem_channels: int = 16
    fine_channels: int = 24
    coarse_channels: int = 64
    fine_blocks: int = 1
    coarse_blocks: int = 2
    head_channels: int = 32
    attn_channels: int = 8


class LiteTrunk(nn.Module):
    """Two-branch conv trunk: ``(B, 3, h, w)`` -> ``(B, head_channels, ceil(h/4), ceil(w/4))``."""

    def __init__(self, cfg: LiteConfig) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn_relu(3, cfg.stem_channels, stride=2),
            conv_bn_relu(cfg.stem_channels, cfg.fine_channels, stride=2),
        )
        self.fine = nn.Sequential(
            *[conv_bn_relu(cfg.fine_channels, cfg.fine_channels) for _ in range(cfg.fine_blocks)]
        )
        self.coarse = nn.Sequential(
            conv_bn_relu(cfg.fine_channels, cfg.coarse_channels, stride=2),
            *[
                conv_bn_relu(cfg.coarse_channels, cfg.coarse_channels)
                for _ in range(cfg.coarse_blocks)
            ],
        )
        self.fuse = conv_bn_relu(cfg.fine_channels + cfg.coarse_channels, cfg.head_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``(B, head_channels, h/4, w/4)`` fused features."""
        fine = self.fine(self.stem(x))
        coarse = resize(self.coarse(fine), tuple(fine.shape[-2:]))
        return self.fuse(torch.cat([fine, coarse], dim=1))


class ScaleAttentionHead(nn.Module):
    """conv3x3 + BN + ReLU + conv1x1 -> 1 channel, sigmoid: ``(B, F, h, w)`` -> ``(B, 1, h, w)``."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.body = conv_bn_relu(in_channels, hidden)
        self.out = nn.Conv2d(hidden, 1, kernel_size=1, bias=True)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, 1, h, w)`` attention in (0, 1)."""
        return torch.sigmoid(self.out(self.body(feats)))


class LiteSegmenter(MultiScaleSegmenter):
    """The bundled default HMSA model: :class:`LiteTrunk` + 1x1 classifier + attention head."""

    arch = "lite"
    min_input_side = 8
    has_attention = True
    #: Receptive-field radius about 43 px (55 px field plus the attention head's 3x3 conv at
    #: stride 4 and the resizes); 48 px of context (a multiple of the stride 8) reproduce the
    #: whole pass to float rounding (tests/test_gate_criteria.py).
    context_margin = 48

    def __init__(self, labels: LabelSet, cfg: LiteConfig | None = None) -> None:
        super().__init__(labels)
        self.cfg = cfg or LiteConfig()
        self.trunk = LiteTrunk(self.cfg)
        self.classifier = nn.Conv2d(self.cfg.head_channels, labels.num_classes, kernel_size=1)
        self.scale_attn = ScaleAttentionHead(self.cfg.head_channels, self.cfg.attn_channels)

    def hparams(self) -> dict:
        """Returns the :class:`LiteConfig` fields as a dict."""
        return asdict(self.cfg)

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns logits ``(B, C, h, w)`` and attention ``(B, 1, h, w)`` at the input size."""
        size = tuple(x.shape[-2:])
        feats = self.trunk(x)
        logits = resize(self.classifier(feats), size)
        attention = resize(self.scale_attn(feats), size)
        return ScaleOutput(logits=logits, attention=attention)


@register("lite")
def build_lite(labels: LabelSet, **hparams: object) -> LiteSegmenter:
    """Returns a randomly initialised :class:`LiteSegmenter` (hparams are :class:`LiteConfig` fields)."""
    try:
        cfg = LiteConfig(**hparams)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"bad hyper-parameters for 'lite': {exc}") from exc
    return LiteSegmenter(labels, cfg)
