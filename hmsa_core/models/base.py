"""The model interface every multi-scale segmenter implements.

A segmenter is run on one scale at a time: it takes a normalised ``(B, 3, h, w)`` image and
returns a :class:`ScaleOutput` whose maps are all at that input size ``(h, w)``. Combining
scales is not the model's job; :mod:`hmsa_core.merge` does it from these outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hmsa_core.labels import LabelSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ScaleOutput:
    """What one forward pass at one scale produces, at that scale's input size.

    Attributes:
        logits: ``(B, C, h, w)`` class logits.
        attention: ``(B, 1, h, w)`` sigmoid scale attention in (0, 1), or ``None`` for models
            without a scale-attention head.
        aux_logits: ``(B, C, h, w)`` auxiliary logits (the OCR soft-region head), or ``None``.
        features: ``(B, F, h', w')`` features at the head's stride, only for models whose merge
            needs them (the explicit-attention baseline), else ``None``.
    """

    logits: torch.Tensor
    attention: torch.Tensor | None = None
    aux_logits: torch.Tensor | None = None
    features: torch.Tensor | None = None


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns ``x`` ``(B, C, h, w)`` resized bilinearly (``align_corners=False``) to ``size``.

    Returns ``x`` itself when it already has that size.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Returns ``(floor(h * scale), floor(w * scale))`` for an input size ``(h, w)``."""
    return int(size[0] * scale), int(size[1] * scale)


def rescale_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Returns the ``(B, 3, floor(h*s), floor(w*s))`` input at ``scale`` (the official resize).

    Bilinear, ``align_corners=False``, no anti-aliasing, ``recompute_scale_factor=True``;
    scale 1.0 returns ``x`` unchanged.
    """
    if scale == 1.0:
        return x
    return F.interpolate(
        x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=True
    )


class MultiScaleSegmenter(nn.Module):
    """Base class: trunk + segmentation head (+ optional scale-attention head).

    Subclasses implement :meth:`forward`. Class attributes describe the model to the engine:

    Attributes:
        arch: registry name of the architecture.
        labels: the label set of the output channels.
        min_input_side: the smallest input height/width the trunk accepts at any scale.
        mean, std: per-channel normalisation of RGB in [0, 1] the model expects.
        has_attention: whether :meth:`forward` returns an attention map.
        has_aux: whether it returns auxiliary logits.
        tile_alignment: the multiple of pixels tile offsets keep (the model's largest stride),
            so that a tiled pass sees the same pixel grid as the whole one.
        context_margin: pixels of context around a region that make a window's output
            there equal the whole pass's (at least the receptive-field radius; a multiple of
            the stride), or ``None`` when unknown or unbounded (global context, e.g. OCR):
            gated windows then take ``limits.tile_overlap`` and are approximate.
    """

    arch: str = "base"
    min_input_side: int = 8
    has_attention: bool = True
    has_aux: bool = False
    tile_alignment: int = 32
    context_margin: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, labels: LabelSet) -> None:
        super().__init__()
        self.labels = labels

    @property
    def num_classes(self) -> int:
        """Returns the number of output classes C."""
        return self.labels.num_classes

    def hparams(self) -> dict:
        """Returns the JSON-serialisable hyper-parameters that rebuild this model via the registry."""
        return {}

    def forward(self, x: torch.Tensor) -> ScaleOutput:  # pragma: no cover - abstract
        """Returns the :class:`ScaleOutput` of a normalised ``(B, 3, h, w)`` input at ``(h, w)``."""
        raise NotImplementedError

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """Returns ``(B, 3, H, W)`` RGB in [0, 1] normalised with the model's mean and std."""
        mean = torch.tensor(self.mean, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        return (rgb - mean) / std

    def parameter_count(self) -> int:
        """Returns the number of parameters (weights and biases, not buffers)."""
        return sum(p.numel() for p in self.parameters())
