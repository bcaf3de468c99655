"""Pictures of where attention gating skipped a scale (see :mod:`hmsa_core.gating`)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hmsa_core.inference import InferenceResult

#: Colour the skipped tiles are tinted with, and how strongly.
SKIPPED_RGB = (200, 30, 30)
SKIPPED_ALPHA = 0.55


def skipped_tiles_image(rgb: np.ndarray, computed: torch.Tensor | np.ndarray | None) -> np.ndarray:
    """Returns ``(h, w, 3)`` uint8: the ``(H, W, 3)`` uint8 input resized to the ``(h, w)`` mask
    ``computed``, tinted red where the scale was skipped (the input unchanged when ``computed``
    is ``None``, i.e. the whole pass ran, at the input's size)."""
    if computed is None:
        return np.asarray(rgb, dtype=np.uint8).copy()
    mask = np.asarray(computed.cpu() if isinstance(computed, torch.Tensor) else computed, bool)
    h, w = mask.shape
    base = np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).resize((w, h), Image.BILINEAR))
    out = base.astype(np.float32)
    tint = np.asarray(SKIPPED_RGB, np.float32)
    out[~mask] = (1 - SKIPPED_ALPHA) * out[~mask] + SKIPPED_ALPHA * tint
    return out.round().clip(0, 255).astype(np.uint8)


def skipped_panels(result: InferenceResult) -> list[tuple[np.ndarray, str]]:
    """Returns ``(image, caption)`` for every scale of ``result`` that gating skipped in part:
    the input at that scale with the skipped tiles tinted, and the share computed."""
    panels = []
    for scale in result.scales:
        per = result.per_scale[scale]
        if per.computed is None:
            continue
        caption = (
            f"scale {scale:g}: {100 * per.cost.computed_fraction:.0f}% computed, "
            f"{per.cost.flops_saved / 1e9:.2f} GFLOPs saved (red: skipped)"
        )
        panels.append((skipped_tiles_image(result.image, per.computed), caption))
    return panels
