"""The where-report: size, boundary and calibration results of :mod:`analysis.where_scales`.

Every report holds additive sums (:mod:`analysis.where_stats`), so reports of images add into a
dataset's report; ``to_dict`` gives JSON (every number keyed by method, bin or width) and
``from_dict`` reads it back; ``to_markdown`` gives the tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from analysis.calibration import ReliabilityBins
from analysis.where_markdown import report_dict, report_markdown
from analysis.where_stats import (
    BinnedStats,
    _add_dict,
    _lists_to_arrays,
    _ratio,
    band_scores,
)


@dataclass
class SizeReport:
    """Objects by size (COCO-like bins), by equivalent diameter and by camera distance.

    Attributes:
        description: the size thresholds in words.
        by_size: small / medium / large.
        by_diameter: log-spaced diameter bins (for plots).
        by_distance: camera-distance bins, ``None`` when the data has no distances.
    """

    description: str
    by_size: BinnedStats
    by_diameter: BinnedStats
    by_distance: BinnedStats | None = None

    def add(self, other: SizeReport) -> None:
        """Adds ``other``'s sums into this report."""
        self.by_size.add(other.by_size)
        self.by_diameter.add(other.by_diameter)
        if other.by_distance is not None:
            if self.by_distance is None:
                self.by_distance = BinnedStats.from_dict(other.by_distance.to_dict())
            else:
                self.by_distance.add(other.by_distance)


@dataclass
class BoundaryReport:
    """Scores near ground-truth boundaries.

    Attributes:
        widths: trimap widths ``(W,)`` in pixels.
        band_confusion: method -> ``(W + 1, C, C)`` confusion per distance band (band ``k``:
            ``widths[k-1] < d <= widths[k]``; the last band: further than every width).
        biou_intersection, biou_union: method -> ``(C,)`` Boundary IoU pixel counts.
        ratio: the Boundary IoU dilation as a share of the image diagonal.
        distance_edges: lower edges ``(D,)`` of the boundary-distance bins of the weight curve.
        distance_pixels: ``(D,)`` pixels per distance bin.
        distance_weights: method -> ``(D, S)`` sum of each scale's effective weight per bin.
    """

    widths: tuple[int, ...]
    band_confusion: dict[str, np.ndarray] = field(default_factory=dict)
    biou_intersection: dict[str, np.ndarray] = field(default_factory=dict)
    biou_union: dict[str, np.ndarray] = field(default_factory=dict)
    ratio: float = 0.02
    distance_edges: tuple[float, ...] = ()
    distance_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distance_weights: dict[str, np.ndarray] = field(default_factory=dict)

    def _cumulative(self, method: str) -> np.ndarray:
        return np.cumsum(self.band_confusion[method][:-1], axis=0)

    def miou(self, method: str) -> np.ndarray:
        """Returns ``(W,)`` mIoU over the pixels within each width of a boundary (NaN if none)."""
        return band_scores(self._cumulative(method))[0]

    def accuracy(self, method: str) -> np.ndarray:
        """Returns ``(W,)`` pixel accuracy within each width of a boundary (NaN if none)."""
        return band_scores(self._cumulative(method))[1]

    def pixels(self) -> np.ndarray:
        """Returns ``(W,)`` labelled pixels within each width (same for every method)."""
        first = next(iter(self.band_confusion.values()), None)
        if first is None:
            return np.zeros(len(self.widths), np.int64)
        return np.cumsum(first[:-1].sum((1, 2)))

    def boundary_iou(self, method: str) -> np.ndarray:
        """Returns ``(C,)`` Boundary IoU per class (NaN for a class in neither band)."""
        return _ratio(self.biou_intersection[method], self.biou_union[method])

    def mean_boundary_iou(self, method: str) -> float:
        """Returns the mean Boundary IoU over classes with a band (NaN if none)."""
        v = self.boundary_iou(method)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    def mean_weight(self, method: str) -> np.ndarray:
        """Returns ``(D, S)`` mean effective weight of each scale per boundary-distance bin."""
        return _ratio(self.distance_weights[method], self.distance_pixels[:, None])

    def add(self, other: BoundaryReport) -> None:
        """Adds ``other``'s sums into this report."""
        for mine, theirs in (
            (self.band_confusion, other.band_confusion),
            (self.biou_intersection, other.biou_intersection),
            (self.biou_union, other.biou_union),
            (self.distance_weights, other.distance_weights),
        ):
            _add_dict(mine, theirs)
        self.distance_pixels = self.distance_pixels + other.distance_pixels


@dataclass
class CalibrationReport:
    """Confidence histograms per method (:class:`~analysis.calibration.ReliabilityBins`)."""

    bins: dict[str, ReliabilityBins] = field(default_factory=dict)

    def ece(self, method: str) -> float:
        """Returns the expected calibration error of ``method``."""
        return self.bins[method].ece()

    def add(self, other: CalibrationReport) -> None:
        """Adds ``other``'s histograms into this report."""
        for m, hist in other.bins.items():
            if m in self.bins:
                self.bins[m].add(hist)
            else:
                self.bins[m] = ReliabilityBins(
                    hist.counts.copy(), hist.confidence.copy(), hist.correct.copy()
                )


@dataclass
class WhereReport:
    """Where each scale wins: by object size, near boundaries, and in confidence.

    Attributes:
        scales: the result's scales ``(S,)``, ascending (the columns of every weight array).
        methods: the methods scored, e.g. ``"hierarchical"``, ``"single:2"``,
            ``"hierarchical@0.5,1,2"`` (a method re-merged on a sub-cascade).
        class_names: the label set's names ``(C,)``.
        object_source: ``"instances"``, ``"components"``, ``"instances+components"`` (or
            several joined with ``" / "`` over a dataset).
        num_images: images accumulated.
        size, boundary, calibration: the three parts.
        notes: messages about the input (bad instance maps, empty masks, ...).
    """

    scales: tuple[float, ...]
    methods: tuple[str, ...]
    class_names: tuple[str, ...]
    object_source: str
    num_images: int
    size: SizeReport
    boundary: BoundaryReport
    calibration: CalibrationReport
    notes: tuple[str, ...] = ()

    @property
    def weight_methods(self) -> tuple[str, ...]:
        """Returns the methods that carry effective-weight sums (hierarchical, max, explicit)."""
        return tuple(m for m in self.methods if m in self.size.by_size.weights)

    def add(self, other: WhereReport) -> None:
        """Adds ``other`` (same scales, methods, classes) into this report."""
        if (other.scales, other.methods, other.class_names) != (
            self.scales,
            self.methods,
            self.class_names,
        ):
            raise ValueError("cannot add where-reports of different scales, methods or classes")
        self.num_images += other.num_images
        sources = set(self.object_source.split(" / ")) | set(other.object_source.split(" / "))
        self.object_source = " / ".join(sorted(s for s in sources if s))
        self.size.add(other.size)
        self.boundary.add(other.boundary)
        self.calibration.add(other.calibration)
        self.notes = tuple(dict.fromkeys(self.notes + other.notes))[:50]

    def to_markdown(self) -> str:
        """Returns the size, boundary and calibration tables as markdown."""
        return report_markdown(self)

    def to_dict(self) -> dict:
        """Returns a JSON-able dict (numbers keyed by method, bin or width; NaN as null)."""
        return report_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> WhereReport:
        """Returns the report of :meth:`to_dict`'s output."""
        return report_from_dict(d)


def report_from_dict(d: Mapping) -> WhereReport:
    """Returns the :class:`WhereReport` of :func:`report_dict`'s output."""
    s, b = d["size"], d["boundary"]
    size = SizeReport(
        s["description"],
        BinnedStats.from_dict(s["by_size"]),
        BinnedStats.from_dict(s["by_diameter"]),
        None if s.get("by_distance") is None else BinnedStats.from_dict(s["by_distance"]),
    )
    raw = b["raw"]
    boundary = BoundaryReport(
        widths=tuple(int(w) for w in b["widths"]),
        band_confusion=_lists_to_arrays(raw["band_confusion"], np.int64),
        biou_intersection=_lists_to_arrays(raw["biou_intersection"], np.int64),
        biou_union=_lists_to_arrays(raw["biou_union"], np.int64),
        ratio=float(b["ratio"]),
        distance_edges=tuple(float(e) for e in b["distance_edges"]),
        distance_pixels=np.asarray(b["distance_pixels"], np.int64),
        distance_weights=_lists_to_arrays(raw["distance_weights"], np.float64),
    )
    calibration = CalibrationReport(
        {
            m: ReliabilityBins(
                np.asarray(h["counts"], np.int64),
                np.asarray(h["confidence"], np.float64),
                np.asarray(h["correct"], np.int64),
            )
            for m, h in d["calibration"].items()
        }
    )
    return WhereReport(
        tuple(float(x) for x in d["scales"]), tuple(d["methods"]), tuple(d["classes"]),
        d["object_source"], int(d["num_images"]), size, boundary, calibration,
        tuple(d.get("notes", ())),
    )  # fmt: skip
