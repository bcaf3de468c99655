"""Validating scale cascades."""

from __future__ import annotations

import math
from collections.abc import Iterable

from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.models.base import scaled_size


def parse_scales(text: str) -> tuple[float, ...]:
    """Returns the scales of a comma- or space-separated list such as ``"0.5, 1, 2"``.

    Raises ``ValueError`` naming the token that is not a number.
    """
    tokens = [t for t in text.replace(",", " ").split() if t]
    scales = []
    for token in tokens:
        try:
            scales.append(float(token))
        except ValueError as exc:
            raise ValueError(
                f"{token!r} is not a number; write scales like '0.5, 1.0, 2.0'"
            ) from exc
    return tuple(scales)


def validate_scales(
    scales: Iterable[float] | str,
    image_size: tuple[int, int] | None = None,
    min_side: int = 1,
    limits: InputLimits = DEFAULT_LIMITS,
) -> tuple[float, ...]:
    """Returns the cascade as an ascending tuple with duplicates removed.

    Checks: at least one scale, at most ``limits.max_scales``; each finite, > 0 and
    <= ``limits.max_scale``. With ``image_size`` ``(H, W)``, also that each scale's resized
    input is at least ``min_side`` pixels on each side and at most ``limits.max_scaled_pixels``.

    Raises:
        ValueError: naming the offending scale (and size) and the allowed range.
    """
    if isinstance(scales, str):
        scales = parse_scales(scales)
    try:
        values = [float(s) for s in scales]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scales must be numbers, got {scales!r}") from exc
    if not values:
        raise ValueError("the cascade is empty: give at least one scale, e.g. (0.5, 1.0, 2.0)")
    for s in values:
        if not math.isfinite(s):
            raise ValueError(f"scale {s} is not a finite number")
        if s <= 0:
            raise ValueError(f"scale {s:g} must be greater than 0")
        if s > limits.max_scale:
            raise ValueError(f"scale {s:g} is above the maximum of {limits.max_scale:g}")
    unique = tuple(sorted(set(values)))
    if len(unique) > limits.max_scales:
        raise ValueError(
            f"{len(unique)} distinct scales given; at most {limits.max_scales} are allowed"
        )
    if image_size is not None:
        for s in unique:
            h, w = scaled_size(image_size, s)
            if min(h, w) < min_side:
                raise ValueError(
                    f"scale {s:g} turns the {image_size[1]} x {image_size[0]} image into {w} x {h} "
                    f"pixels, below the model's minimum side of {min_side}; drop that scale or "
                    "use a larger image"
                )
            if h * w > limits.max_scaled_pixels:
                raise ValueError(
                    f"scale {s:g} turns the {image_size[1]} x {image_size[0]} image into {w} x {h} "
                    f"= {h * w:,} pixels, over the per-scale limit of {limits.max_scaled_pixels:,}; "
                    "lower the scale or the maximum input side"
                )
    return unique
