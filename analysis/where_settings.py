"""Settings and method names of the where-analysis (:mod:`analysis.where_scales`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from analysis.boundaries import TRIMAP_WIDTHS
from analysis.objects import SizeBins


@dataclass(frozen=True)
class WhereSettings:
    """Settings of the where-analysis.

    Attributes:
        size_bins: object size thresholds (:class:`~analysis.objects.SizeBins`).
        trimap_widths: boundary band widths in pixels (d in 1..64).
        boundary_iou_ratio: Boundary IoU dilation as a share of the image diagonal (0.02).
        calibration_bins: equal-width confidence bins (15).
        calibration_stride: the confidence histogram takes every ``k``-th pixel of each row and
            column (2: a quarter of the pixels, a quarter of the softmax cost; 1: all).
        min_objects: a bin with fewer objects is shown as unreliable ("n=3, too few").
        distance_edges: lower edges of the camera-distance bins, metres (last bin open).
        weight_distance_edges: lower edges of the boundary-distance bins of the weight curve
            (pixels; last bin open).
        ignore_index: the mask's ignore id.
    """

    size_bins: SizeBins = field(default_factory=SizeBins)
    trimap_widths: tuple[int, ...] = TRIMAP_WIDTHS
    boundary_iou_ratio: float = 0.02
    calibration_bins: int = 15
    calibration_stride: int = 2
    min_objects: int = 10
    distance_edges: tuple[float, ...] = (0.0, 10.0, 20.0, 40.0, 80.0)
    weight_distance_edges: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 65)
    ignore_index: int = 255


#: The default settings (one shared frozen instance).
DEFAULT_SETTINGS = WhereSettings()


def parse_where_method(method: str) -> tuple[str, tuple[float, ...] | None]:
    """Returns ``(merge method, cascade or None)`` of ``"hierarchical"`` or
    ``"hierarchical@0.5,1,2"`` (a method re-merged on a sub-cascade of the result).

    Raises:
        ValueError: a cascade that is not numbers.
    """
    if "@" not in method:
        return method, None
    name, _, scales = method.partition("@")
    try:
        cascade = tuple(sorted(float(s) for s in scales.split(",") if s.strip()))
    except ValueError as exc:
        raise ValueError(f"bad cascade in method {method!r}; write e.g. 'mean@0.5,1,2'") from exc
    if not cascade:
        raise ValueError(f"method {method!r} names no scale after '@'")
    return name, cascade


def default_methods(scales: Sequence[float]) -> tuple[str, ...]:
    """Returns ``hierarchical, mean, max`` and ``single:<s>`` for every scale (ascending)."""
    singles = tuple(f"single:{s:g}" for s in sorted(scales))
    return ("hierarchical", "mean", "max", *singles) if len(scales) > 1 else singles
