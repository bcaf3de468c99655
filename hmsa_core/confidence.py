"""Per-pixel confidence of a prediction: top softmax probability, top-2 margin and entropy.

Pure torch, computed from logits only (no forward pass): for a merged result, or for one
scale's own logits at that scale's own size (DESIGN 1.7, issue 19 item 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover - types only
    from hmsa_core.inference import InferenceResult

#: Rows per chunk when reducing ``(C, H, W)`` logits: bounds the temporary ``(C, rows, W)``
#: copies that softmax needs, so a 1024 x 2048 map never doubles its memory.
_CHUNK_ROWS = 128


@dataclass(frozen=True)
class ConfidenceMaps:
    """Three confidence maps of one prediction, each ``(H, W)`` float32 on the CPU.

    Attributes:
        top_prob: the largest softmax probability at each pixel, in ``[1/C, 1]``.
        margin: top-1 minus top-2 softmax probability, in ``[0, 1]`` (0 with one class).
        entropy: the softmax entropy in nats, in ``[0, log C]``.
    """

    top_prob: torch.Tensor
    margin: torch.Tensor
    entropy: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        """Returns ``(H, W)``."""
        return int(self.top_prob.shape[0]), int(self.top_prob.shape[1])

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Returns ``{"top_prob", "margin", "entropy"}`` -> ``(H, W)`` maps."""
        return {"top_prob": self.top_prob, "margin": self.margin, "entropy": self.entropy}


def confidence_maps(logits: torch.Tensor) -> ConfidenceMaps:
    """Returns the :class:`ConfidenceMaps` of ``(C, H, W)`` logits (softmax over ``C``).

    Works in row chunks, so the extra memory is a few ``(C, 128, W)`` temporaries.

    Raises:
        ValueError: logits that are not ``(C, H, W)`` with ``C >= 1``, or not floating point.
    """
    if logits.dim() != 3 or min(logits.shape) < 1:
        raise ValueError(f"logits must be (C, H, W) and non-empty, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    c, h, w = (int(n) for n in logits.shape)
    top = torch.empty((h, w), dtype=torch.float32)
    margin = torch.empty((h, w), dtype=torch.float32)
    entropy = torch.empty((h, w), dtype=torch.float32)
    with torch.no_grad():
        for r0 in range(0, h, _CHUNK_ROWS):
            part = logits[:, r0 : r0 + _CHUNK_ROWS].detach().float().cpu()
            logp = torch.log_softmax(part, dim=0)
            k = min(2, c)
            best = logp.topk(k, dim=0).values.exp()
            top[r0 : r0 + _CHUNK_ROWS] = best[0]
            margin[r0 : r0 + _CHUNK_ROWS] = best[0] - best[1] if c > 1 else 0.0
            p = logp.exp()
            entropy[r0 : r0 + _CHUNK_ROWS] = -(p * logp).nan_to_num_(0.0).sum(0)
    return ConfidenceMaps(top_prob=top, margin=margin, entropy=entropy.clamp_(min=0.0))


def result_confidence(result: InferenceResult, scale: float | None = None) -> ConfidenceMaps:
    """Returns the confidence maps of a result's merged logits (``scale=None``, ``(H, W)``) or of
    one scale's own logits at that scale's own size (``(h_s, w_s)``).

    Raises:
        ValueError: ``scale`` was not computed in this result.
    """
    if scale is None:
        return confidence_maps(result.logits)
    key = float(scale)
    if key not in result.per_scale:
        have = ", ".join(f"{s:g}" for s in sorted(result.per_scale))
        raise ValueError(f"scale {key:g} was not computed for this result (have: {have})")
    logits = result.per_scale[key].logits
    return confidence_maps(logits[0] if logits.dim() == 4 else logits)
