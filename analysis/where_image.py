"""One image of the where-analysis: its summary (small-object recall per method, and HMSA's gain
there, which the dataset page sorts its images by) and :class:`WhereImage`, which scores merges
made elsewhere (by the sweep) so that none is made twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis.where_compute import ImageInputs, empty_report, score_method
from analysis.where_report import WhereReport
from analysis.where_settings import parse_where_method

if TYPE_CHECKING:  # pragma: no cover - types only
    from analysis.where_scales import WhereAccumulator


@dataclass(frozen=True)
class ImageWhere:
    """One image's summary: small-object recall per method and HMSA's gain there.

    Attributes:
        name: the image's name (or index).
        small_objects: small objects in the image.
        small_recall: method -> recall of small objects (NaN without small objects).
        gain: recall of the first hierarchical method minus the best single scale's on
            this image (NaN without small objects or without both kinds of method).
        best_single: the single-scale method with the best small-object recall here.
    """

    name: str
    small_objects: int
    small_recall: dict[str, float]
    gain: float
    best_single: str

    @classmethod
    def from_dict(cls, d: Mapping) -> ImageWhere:
        """Returns the summary of :meth:`to_dict`'s output (``None`` read as NaN)."""

        def num(v: object) -> float:
            return float("nan") if v is None else float(v)  # type: ignore[arg-type]

        return cls(
            str(d["name"]),
            int(d["small_objects"]),
            {str(k): num(v) for k, v in d["small_recall"].items()},
            num(d["gain"]),
            str(d.get("best_single", "")),
        )

    def to_dict(self) -> dict:
        """Returns a JSON-able dict (NaN as ``None``)."""

        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        return {
            "name": self.name,
            "small_objects": self.small_objects,
            "small_recall": {k: num(v) for k, v in self.small_recall.items()},
            "gain": num(self.gain),
            "best_single": self.best_single,
        }


def image_summary(report: WhereReport, name: str) -> ImageWhere:
    """Returns the :class:`ImageWhere` of a one-image report."""
    small = report.size.by_size
    recall = {m: float(small.recall(m)[0]) for m in report.methods}
    singles = {m: r for m, r in recall.items() if m.startswith("single:") and np.isfinite(r)}
    hmsa = next((m for m in report.methods if m.startswith("hierarchical")), None)
    best = max(singles, key=lambda m: singles[m]) if singles else ""
    gain = recall[hmsa] - singles[best] if hmsa and best else float("nan")
    return ImageWhere(name, int(small.objects[0]), recall, gain, best)


def _merge_key(kind: str, cascade: Sequence[float]) -> tuple:
    """Returns what identifies a merge: a single scale by its scale alone (its merge does not
    depend on the rest of the cascade), any other method by its method and cascade."""
    if kind.startswith("single:"):
        return ("single", float(kind.split(":", 1)[1]))
    return (kind, tuple(sorted(float(s) for s in cascade)))


class WhereImage:
    """One image of a :class:`WhereAccumulator` fed merge by merge (:meth:`score`), then
    completed by :meth:`finish`, which merges what nobody handed over."""

    def __init__(
        self,
        acc: WhereAccumulator,
        mask: np.ndarray,
        instances: np.ndarray | None,
        distances: Mapping[int, float] | None,
        name: str,
    ) -> None:
        self.acc, self.name = acc, name
        self.inputs = ImageInputs.build(
            mask, tuple(np.shape(mask)), acc.labels, instances, distances, acc.settings,
            acc.scales,
        )  # fmt: skip
        self.report = empty_report(self.inputs, acc.methods, acc.settings)
        self._wanted: dict[tuple, str] = {}
        for m in acc.methods:
            kind, cascade = parse_where_method(m)
            self._wanted.setdefault(_merge_key(kind, cascade or acc.scales), m)
        self._done: set[str] = set()

    def score(self, cascade: Sequence[float], method: str, merged: object) -> None:
        """Scores a merge of ``method`` on ``cascade`` (a :class:`~hmsa_core.merge.MergeResult`,
        batch 1) if this image wants it; otherwise does nothing."""
        name = self._wanted.get(_merge_key(method, cascade))
        if name is None or name in self._done or self.inputs.empty:
            return
        score_method(self.report, self.inputs, name, {}, self.acc.model, lambda _: merged)
        self._done.add(name)

    def finish(self, per_scale: Mapping[float, object]) -> ImageWhere:
        """Merges and scores every method not handed over, from ``per_scale``; adds the image
        to the accumulator and returns its summary."""
        if not self.inputs.empty:
            outputs = {s: per_scale[s] for s in self.acc.scales}
            for m in self.acc.methods:
                if m not in self._done and m in self.report.methods:
                    score_method(self.report, self.inputs, m, outputs, self.acc.model)
        return self.acc._take(self.report, self.name)
