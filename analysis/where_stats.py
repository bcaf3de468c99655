"""Additive statistics behind the where-report: histograms and confusion matrices only.

Every field is a sum over pixels or objects, so two reports of the same cascade and label set
add (``add``) and a dataset's report streams with constant memory. Derived numbers (accuracy,
mIoU, recall, mean weights) are computed on demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from analysis.boundaries import _accuracy, _miou


def _add_dict(into: dict[str, np.ndarray], other: Mapping[str, np.ndarray]) -> None:
    """Adds ``other``'s arrays into ``into`` key by key (keys missing in ``into`` are copied)."""
    for key, value in other.items():
        if key in into:
            into[key] = into[key] + value
        else:
            into[key] = np.array(value, copy=True)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Returns ``num / den`` with NaN where ``den == 0``."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _arrays_to_lists(d: Mapping[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in d.items()}


def _lists_to_arrays(d: Mapping[str, list], dtype: type) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=dtype) for k, v in d.items()}


@dataclass
class BinnedStats:
    """Objects grouped in bins (by size, diameter or camera distance), with sums per method.

    Attributes:
        names: ``(B,)`` bin names.
        objects: ``(B,)`` objects per bin.
        pixels: ``(B,)`` pixels of those objects.
        correct: method -> ``(B,)`` pixels labelled with their object's class.
        found: method -> ``(B,)`` objects found (at least half their pixels right).
        confusion: method -> ``(B, C, C)`` confusion of the bin's pixels (rows ground truth),
            kept for the size and distance bins, not for the diameter bins (empty dict).
        weights: method -> ``(B, S)`` sum over the bin's pixels of each scale's effective
            weight (scales of the report, ascending), for methods with weight maps.
        min_objects: bins with fewer objects are flagged unreliable.
    """

    names: tuple[str, ...]
    objects: np.ndarray
    pixels: np.ndarray
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    found: dict[str, np.ndarray] = field(default_factory=dict)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    min_objects: int = 10

    @property
    def reliable(self) -> np.ndarray:
        """Returns ``(B,)`` bool: bins with at least ``min_objects`` objects."""
        return self.objects >= self.min_objects

    def recall(self, method: str) -> np.ndarray:
        """Returns ``(B,)`` object recall of ``method`` per bin (NaN for an empty bin)."""
        return _ratio(self.found[method], self.objects)

    def accuracy(self, method: str) -> np.ndarray:
        """Returns ``(B,)`` pixel accuracy of ``method`` over each bin's object pixels."""
        return _ratio(self.correct[method], self.pixels)

    def miou(self, method: str) -> np.ndarray:
        """Returns ``(B,)`` mIoU restricted to each bin's pixels (NaN where not kept or empty)."""
        if method not in self.confusion:
            return np.full(len(self.names), np.nan)
        return _miou(self.confusion[method])

    def mean_weight(self, method: str) -> np.ndarray:
        """Returns ``(B, S)`` mean effective weight of each scale over each bin's pixels."""
        return _ratio(self.weights[method], self.pixels[:, None])

    def add(self, other: BinnedStats) -> None:
        """Adds ``other`` (same bins) into this one."""
        if other.names != self.names:
            raise ValueError(f"cannot add bins {other.names} to bins {self.names}")
        self.objects = self.objects + other.objects
        self.pixels = self.pixels + other.pixels
        for mine, theirs in (
            (self.correct, other.correct),
            (self.found, other.found),
            (self.confusion, other.confusion),
            (self.weights, other.weights),
        ):
            _add_dict(mine, theirs)

    def to_dict(self) -> dict:
        """Returns a JSON-able dict: raw sums keyed by method, and derived numbers keyed by
        method then bin name (``recall``, ``accuracy``, ``miou``, ``mean_weight``)."""
        derived: dict[str, dict] = {}
        for m in self.correct:
            rows = {
                "recall": self.recall(m),
                "accuracy": self.accuracy(m),
                "miou": self.miou(m),
            }
            derived[m] = {k: dict(zip(self.names, _nan_none(v))) for k, v in rows.items()}
            if m in self.weights:
                derived[m]["mean_weight"] = dict(
                    zip(self.names, [_nan_none(r) for r in self.mean_weight(m)])
                )
        return {
            "names": list(self.names),
            "objects": dict(zip(self.names, self.objects.tolist())),
            "pixels": dict(zip(self.names, self.pixels.tolist())),
            "reliable": dict(zip(self.names, self.reliable.tolist())),
            "min_objects": self.min_objects,
            "by_method": derived,
            "raw": {
                "correct": _arrays_to_lists(self.correct),
                "found": _arrays_to_lists(self.found),
                "confusion": _arrays_to_lists(self.confusion),
                "weights": _arrays_to_lists(self.weights),
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> BinnedStats:
        """Returns the stats of :meth:`to_dict`'s output."""
        names = tuple(d["names"])
        raw = d["raw"]
        return cls(
            names=names,
            objects=np.array([d["objects"][n] for n in names], dtype=np.int64),
            pixels=np.array([d["pixels"][n] for n in names], dtype=np.int64),
            correct=_lists_to_arrays(raw["correct"], np.int64),
            found=_lists_to_arrays(raw["found"], np.int64),
            confusion=_lists_to_arrays(raw["confusion"], np.int64),
            weights=_lists_to_arrays(raw["weights"], np.float64),
            min_objects=int(d.get("min_objects", 10)),
        )


def _nan_none(values: np.ndarray) -> list:
    """Returns ``values`` as a list with NaN as ``None`` (JSON has no NaN)."""
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


def band_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(miou (W,), accuracy (W,))`` of cumulative trimap confusions ``(W, C, C)``."""
    return _miou(confusion), _accuracy(confusion)
