"""``explicit_lite``: the explicit scale-attention baseline (Chen et al. 2016) on the ``lite`` trunk.

Each scale's pass returns logits and its stride-4 features. The merge resizes the features of
all N training scales to the stride-4 grid of scale 1.0, concatenates them, and a small head
predicts N channels; their softmax over scales weights the N logits at the output size
(DESIGN 1.3). The head is trained for one fixed scale tuple and cannot run any other cascade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
from torch import nn

from hmsa_core.labels import LabelSet
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, resize
from hmsa_core.models.layers import conv_bn_relu
from hmsa_core.models.lite import LiteConfig, LiteTrunk
from hmsa_core.models.registry import register

if TYPE_CHECKING:  # merge imports models.base: import it lazily to avoid a cycle
    from hmsa_core.merge import MergeResult

DEFAULT_TRAIN_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)


def _fmt(scales: Sequence[float]) -> str:
    return "(" + ", ".join(f"{s:g}" for s in scales) + ")"


class ExplicitScaleHead(nn.Module):
    """conv3x3 + BN + ReLU + conv1x1: ``(B, N*F, h, w)`` features -> ``(B, N, h, w)`` scale scores."""

    def __init__(self, in_channels: int, hidden: int, num_scales: int) -> None:
        super().__init__()
        self.body = conv_bn_relu(in_channels, hidden)
        self.out = nn.Conv2d(hidden, num_scales, kernel_size=1, bias=True)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, N, h, w)`` unnormalised scores of each scale."""
        return self.out(self.body(feats))


class ExplicitLiteSegmenter(MultiScaleSegmenter):
    """:class:`LiteTrunk` + 1x1 classifier per scale, merged by a learnt softmax over N scales."""

    arch = "explicit_lite"
    min_input_side = 8
    has_attention = False

    def __init__(
        self,
        labels: LabelSet,
        cfg: LiteConfig | None = None,
        train_scales: Sequence[float] = DEFAULT_TRAIN_SCALES,
    ) -> None:
        super().__init__(labels)
        scales = tuple(sorted(float(s) for s in train_scales))
        if len(scales) < 2 or len(set(scales)) != len(scales) or 1.0 not in scales:
            raise ValueError(
                f"train_scales must hold at least two distinct scales including 1.0, got {train_scales}"
            )
        if any(s <= 0 for s in scales):
            raise ValueError(f"train_scales must be positive, got {train_scales}")
        self.cfg = cfg or LiteConfig()
        self.train_scales = scales
        self.trunk = LiteTrunk(self.cfg)
        self.classifier = nn.Conv2d(self.cfg.head_channels, labels.num_classes, kernel_size=1)
        self.scale_head = ExplicitScaleHead(
            self.cfg.head_channels * len(scales), self.cfg.attn_channels, len(scales)
        )

    def hparams(self) -> dict:
        """Returns the :class:`LiteConfig` fields plus ``train_scales`` (a list)."""
        return {**asdict(self.cfg), "train_scales": list(self.train_scales)}

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns logits ``(B, C, h, w)`` at the input size and the ``(B, F, h/4, w/4)`` features."""
        size = tuple(x.shape[-2:])
        feats = self.trunk(x)
        logits = resize(self.classifier(feats), size)
        return ScaleOutput(logits=logits, attention=None, features=feats)

    def scale_weights(self, per_scale: Mapping[float, ScaleOutput]) -> torch.Tensor:
        """Returns the ``(B, N, h4, w4)`` softmax over scales on scale 1.0's stride-4 grid.

        Channels follow ascending scale order. Raises ``ValueError`` for a cascade other than
        ``train_scales`` or outputs without features.
        """
        scales = tuple(sorted(float(s) for s in per_scale))
        if scales != self.train_scales:
            raise ValueError(
                f"explicit attention was trained for {_fmt(self.train_scales)} and cannot run "
                f"other cascades (got {_fmt(scales)}); use 'hierarchical', 'mean', 'max' or "
                "'single:<s>' for them"
            )
        feats = []
        for s in scales:
            f = per_scale[s].features
            if f is None:
                raise ValueError(f"scale {s:g} has no features: not an explicit-attention output")
            feats.append(f)
        grid = tuple(per_scale[1.0].features.shape[-2:])  # type: ignore[union-attr]
        stacked = torch.cat([resize(f, grid) for f in feats], dim=1)
        return torch.softmax(self.scale_head(stacked), dim=1)

    def merge_explicit(
        self, per_scale: Mapping[float, ScaleOutput], output_size: tuple[int, int]
    ) -> MergeResult:
        """Returns the explicit-attention :class:`MergeResult` at ``output_size`` ``(H, W)``.

        ``logits`` is ``(B, C, H, W)`` = sum over scales of ``w_s * up(p_s)``; ``weights[s]`` is
        the ``(B, H, W)`` softmax weight of scale ``s``.

        Raises:
            ValueError: the cascade differs from ``train_scales``.
        """
        from hmsa_core.merge import MergeResult

        outputs = {float(s): getattr(o, "output", o) for s, o in per_scale.items()}
        weights = resize(self.scale_weights(outputs), tuple(output_size))
        scales = self.train_scales
        merged = sum(
            weights[:, i : i + 1] * resize(outputs[s].logits, tuple(output_size))
            for i, s in enumerate(scales)
        )
        return MergeResult(
            method="explicit",
            scales=scales,
            logits=merged,  # type: ignore[arg-type]
            weights={s: weights[:, i] for i, s in enumerate(scales)},
        )


@register("explicit_lite")
def build_explicit_lite(labels: LabelSet, **hparams: object) -> ExplicitLiteSegmenter:
    """Returns a randomly initialised :class:`ExplicitLiteSegmenter`.

    hparams: :class:`LiteConfig` fields and ``train_scales`` (default ``(0.5, 1.0, 2.0)``).
    """
    params = dict(hparams)
    scales = params.pop("train_scales", DEFAULT_TRAIN_SCALES)
    try:
        cfg = LiteConfig(**params)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"bad hyper-parameters for 'explicit_lite': {exc}") from exc
    return ExplicitLiteSegmenter(labels, cfg, tuple(scales))  # type: ignore[arg-type]
