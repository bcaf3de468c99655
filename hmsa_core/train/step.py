"""One training forward of a recipe: the model at every training scale and the recipe's loss."""

from __future__ import annotations

import torch
from torch import nn

from hmsa_core.merge import ExplicitMerger
from hmsa_core.models.base import MultiScaleSegmenter, rescale_input
from hmsa_core.train.config import HMSA_TRAIN_SCALES
from hmsa_core.train.losses import explicit_loss, hmsa_loss


class StepModule(nn.Module):
    """One training forward: the model at every training scale and the recipe's loss.

    HMSA models (with an attention head) train on (0.5, 1.0); explicit-attention models on their
    ``train_scales``. Wrapping the whole multi-scale forward in one module lets
    DistributedDataParallel see a single forward per backward.
    """

    def __init__(
        self, model: MultiScaleSegmenter, aux_weight: float = 0.4, scale_weight: float = 0.05
    ) -> None:
        super().__init__()
        self.model = model
        self.explicit = isinstance(model, ExplicitMerger)
        if self.explicit:
            self.scales: tuple[float, ...] = tuple(model.train_scales)  # type: ignore[attr-defined]
        elif model.has_attention:
            self.scales = HMSA_TRAIN_SCALES
        else:
            raise ValueError(
                f"architecture {model.arch!r} has neither scale attention nor an "
                "explicit-attention head: nothing to train multi-scale"
            )
        self.aux_weight = aux_weight
        self.scale_weight = scale_weight
        self.register_buffer("class_weight", None, persistent=False)

    def set_class_weight(self, weight: torch.Tensor | None) -> None:
        """Sets the ``(C,)`` per-class cross-entropy weight (``None``: plain cross-entropy)."""
        self.class_weight = weight

    def forward(
        self, x: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(total loss, main loss, merged logits (B, C, h, w) detached)``.

        ``x`` is the normalised ``(B, 3, h, w)`` crop, ``target`` its ``(B, h, w)`` ids.
        """
        outputs = {s: self.model(rescale_input(x, s)) for s in self.scales}
        if self.explicit:
            size = (int(x.shape[-2]), int(x.shape[-1]))
            merged = self.model.merge_explicit(outputs, size).logits  # type: ignore[attr-defined]
            parts = explicit_loss(merged, outputs, target, self.scale_weight, self.class_weight)
        else:
            parts = hmsa_loss(
                outputs, target, self.aux_weight, self.scale_weight, self.class_weight
            )
        return parts.total, parts.main, parts.joint.detach()
