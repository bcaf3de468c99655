"""The training losses: HMSA's two-scale loss (DESIGN 1.4) and the explicit baseline's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hmsa_core.labels import IGNORE_INDEX
from hmsa_core.merge import hierarchical_logits
from hmsa_core.models.base import ScaleOutput, resize


@dataclass
class LossParts:
    """A training loss and the merged prediction it scored.

    Attributes:
        total: scalar loss to back-propagate.
        main: scalar cross-entropy of the merged prediction.
        joint: ``(B, C, h, w)`` merged logits at the crop size.
    """

    total: torch.Tensor
    main: torch.Tensor
    joint: torch.Tensor


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Returns the mean cross-entropy of ``(B, C, h, w)`` logits on ``(B, h, w)`` ids, ignoring 255.

    ``weight`` is an optional ``(C,)`` per-class weight.
    """
    return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor | None:
    """Returns ``(C,)`` weights ``(median / freq_c) ** power`` from per-class pixel ``counts``.

    Classes without pixels get weight 1; ``power`` 0 returns ``None`` (plain cross-entropy).
    The weights are scaled so the average weight of a labelled pixel is 1.
    """
    if power == 0:
        return None
    counts = counts.double()
    seen = counts > 0
    weights = torch.ones_like(counts)
    median = counts[seen].median()
    weights[seen] = (median / counts[seen]) ** power
    weights = weights * counts.sum() / (weights * counts).sum()
    return weights.float()


def hmsa_loss(
    outputs: Mapping[float, ScaleOutput],
    target: torch.Tensor,
    aux_weight: float = 0.4,
    scale_weight: float = 0.05,
    weight: torch.Tensor | None = None,
) -> LossParts:
    """Returns the HMSA two-scale loss of outputs at scales 0.5 and 1.0 of the crop.

    ``joint = up(a05 * p05) + (1 - up(a05)) * p1`` (via :func:`hierarchical_logits`);
    loss = CE(joint) + aux_weight * CE(joint_aux) (with aux) + scale_weight * (CE(up(p05)) + CE(p1)).
    """
    size = tuple(target.shape[-2:])
    logits = {s: o.logits for s, o in outputs.items()}
    attention = {s: o.attention for s, o in outputs.items()}
    joint = resize(hierarchical_logits(logits, attention), size)
    main = cross_entropy(joint, target, weight)
    total = main
    if all(o.aux_logits is not None for o in outputs.values()):
        aux = {s: o.aux_logits for s, o in outputs.items()}
        total = total + aux_weight * cross_entropy(
            resize(hierarchical_logits(aux, attention), size),
            target,
            weight,  # type: ignore[arg-type]
        )
    for out in outputs.values():
        total = total + scale_weight * cross_entropy(resize(out.logits, size), target, weight)
    return LossParts(total, main, joint)


def explicit_loss(
    merged: torch.Tensor,
    outputs: Mapping[float, ScaleOutput],
    target: torch.Tensor,
    scale_weight: float = 0.05,
    weight: torch.Tensor | None = None,
) -> LossParts:
    """Returns CE(merged) + scale_weight * sum_s CE(up(p_s)) for the explicit baseline."""
    size = tuple(target.shape[-2:])
    main = cross_entropy(merged, target, weight)
    total = main
    for out in outputs.values():
        total = total + scale_weight * cross_entropy(resize(out.logits, size), target, weight)
    return LossParts(total, main, merged)
