"""Small models of the official architecture for tests: the same code as
``hrnet48_ocr_mscale`` (HRNet trunk, OCR head with aux logits, scale attention), tiny widths."""

from __future__ import annotations

import torch

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


def tiny_official(classes: int = 5, seed: int = 0) -> MultiScaleSegmenter:
    """Returns an eval-mode tiny ``hrnet48_ocr_mscale`` with ``classes`` classes, its weights
    drawn with ``seed`` (BatchNorms fresh: identity statistics)."""
    torch.manual_seed(seed)
    model = build(
        ARCH, classes, trunk=TINY_TRUNK, mid_channels=16, key_channels=8, attn_bottleneck=8
    )
    return model.eval()
