"""Small models for tests: :func:`tiny_official` has the same code as ``hrnet48_ocr_mscale``
(HRNet trunk, OCR head with aux logits, scale attention) at tiny widths; :func:`seeded_lite` is
the untrained ``lite`` model behind the shared ``model`` fixture (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import torch

from hmsa_core import InferenceResult, infer
from hmsa_core.models import build
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH

TINY_TRUNK = {
    "stem_channels": 8,
    "layer1_planes": 4,
    "layer1_blocks": 1,
    "branch_channels": [4, 8, 8, 8],
    "stage_modules": [1, 1, 1],
    "blocks_per_branch": 1,
}


#: Widths of a small ``lite`` model for training tests (a few seconds per step on CPU).
SMALL_LITE = {
    "stem_channels": 8,
    "fine_channels": 8,
    "coarse_channels": 16,
    "head_channels": 16,
    "attn_channels": 4,
}


def tiny_official(classes: int = 5, seed: int = 0) -> MultiScaleSegmenter:
    """Returns an eval-mode tiny ``hrnet48_ocr_mscale`` with ``classes`` classes, its weights
    drawn with ``seed`` (BatchNorms fresh: identity statistics)."""
    torch.manual_seed(seed)
    model = build(
        ARCH, classes, trunk=TINY_TRUNK, mid_channels=16, key_channels=8, attn_bottleneck=8
    )
    return model.eval()


def seeded_lite(classes: int = 19, seed: int = 0) -> MultiScaleSegmenter:
    """Returns an eval-mode untrained ``lite`` model with ``classes`` classes, built right after
    ``torch.manual_seed(seed)`` (so the global RNG continues from there, as the tests expect)."""
    torch.manual_seed(seed)
    return build("lite", classes).eval()


def noise_rgb(size: tuple[int, int], seed: int) -> np.ndarray:
    """Returns an ``(H, W, 3)`` uint8 image of uniform noise drawn with ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def noise_result(
    model: MultiScaleSegmenter,
    size: tuple[int, int],
    seed: int = 0,
    scales: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> InferenceResult:
    """Returns the uncached :class:`InferenceResult` of ``model`` on :func:`noise_rgb` over
    ``scales`` (the result most analysis tests start from)."""
    return infer(noise_rgb(size, seed), scales, model=model, cache=None)
