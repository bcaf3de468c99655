"""Limits every decoded image is checked against, shared by the PIL and the TIFF readers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hmsa_core.limits import InputLimits

#: Most samples (channels) per pixel an image may have: RGB plus alpha.
MAX_CHANNELS = 4
#: Most bytes per sample (float64).
MAX_SAMPLE_BYTES = 8
#: Float images: values up to ``1 + FLOAT_TOLERANCE`` are read as [0, 1] (and clipped); values
#: down to ``-FLOAT_TOLERANCE`` are clipped to 0 (resampling over- and undershoot).
FLOAT_TOLERANCE = 0.05
#: The EXIF (and TIFF) orientation tag.
ORIENTATION_TAG = 0x0112

#: The same transposes on ``(H, W, ...)`` numpy arrays.
_ARRAY_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def max_decoded_bytes(limits: InputLimits) -> int:
    """Returns the most bytes one decoded image may take under ``limits``:
    ``max_pixels * MAX_CHANNELS * MAX_SAMPLE_BYTES`` (40 MP RGBA float64 by default)."""
    return limits.max_pixels * MAX_CHANNELS * MAX_SAMPLE_BYTES


def _check_size(height: int, width: int, limits: InputLimits, what: str = "image") -> None:
    """Raises ``ValueError`` when an image of ``height x width`` is empty or over ``limits``."""
    if height < 1 or width < 1:
        raise ValueError(f"{what} is empty ({height} x {width} pixels)")
    if height * width > limits.max_pixels:
        raise ValueError(
            f"{what} is too large: {width} x {height} = {height * width:,} pixels "
            f"(limit {limits.max_pixels:,}; set HMSA_MAX_PIXELS to change it)"
        )
    if max(height, width) > limits.max_side:
        raise ValueError(
            f"{what} side of {max(height, width)} pixels exceeds the limit of {limits.max_side} "
            "(set HMSA_MAX_SIDE to change it)"
        )
