"""Segmenter architectures and their registry. Importing this package registers them all."""

from hmsa_core.models import (
    explicit,  # noqa: F401  (registers 'explicit_lite')
    lite,  # noqa: F401  (registers 'lite')
    mscale_ocr,  # noqa: F401  (registers 'hrnet48_ocr_mscale')
)
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput
from hmsa_core.models.registry import available, build, register

__all__ = ["MultiScaleSegmenter", "ScaleOutput", "available", "build", "register"]
