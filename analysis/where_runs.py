"""The where-report of a dataset run (:mod:`analysis.dataset_runs`), stored with the run.

``<run folder>/where.json`` holds the report's sums over the scored images and each image's
small-object summary (:class:`~analysis.where_scales.ImageWhere` plus its index). It is
rewritten (atomically) after every image, so a stopped run keeps it and Continue resumes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis.where_report import WhereReport
from analysis.where_scales import ImageWhere, WhereAccumulator
from hmsa_core.labels import LabelSet

WHERE_FILE = "where.json"


@dataclass(frozen=True)
class RunWhere:
    """A run's stored where-report.

    Attributes:
        report: the sums over the images in ``images`` (``None`` before the first image).
        images: per scored image, its data-source index and :class:`ImageWhere` summary.
    """

    report: WhereReport | None
    images: tuple[tuple[int, ImageWhere], ...]

    def ranking(self) -> list[tuple[int, ImageWhere]]:
        """Returns the images by small-object recall gain of HMSA over its best single scale,
        largest first (images without small objects last)."""

        def key(item: tuple[int, ImageWhere]) -> tuple[bool, float]:
            gain = item[1].gain
            return (gain != gain, -gain if gain == gain else 0.0)

        return sorted(self.images, key=key)


def where_path(folder: Path) -> Path:
    """Returns the where-report file of a run folder."""
    return Path(folder) / WHERE_FILE


def load_run_where(folder: str | os.PathLike) -> RunWhere | None:
    """Returns the stored where-report of a run folder, or ``None`` when none is stored or it
    is unreadable (the next run rebuilds it from the images it scores)."""
    path = where_path(Path(folder))
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        report = None if data["report"] is None else WhereReport.from_dict(data["report"])
        images = tuple((int(d["index"]), ImageWhere.from_dict(d)) for d in data["images"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None
    return RunWhere(report, images)


class RunWhereWriter:
    """Feeds a run's sweep with a :class:`WhereAccumulator` (resumed from what is stored) and
    writes ``where.json`` after every image.

    Args:
        folder: the run folder.
        labels: the model's label set.
        scales: the run's scales (the union of its cascades).
        model: the model (for explicit attention).
    """

    def __init__(
        self, folder: Path, labels: LabelSet, scales: Sequence[float], model: object | None
    ) -> None:
        self.folder = Path(folder)
        self.accumulator = WhereAccumulator(labels, scales, model=model)
        self.indices: list[int] = []
        stored = load_run_where(self.folder)
        if stored is not None:
            try:
                self.accumulator.resume(stored.report, [w for _, w in stored.images])
                self.indices = [i for i, _ in stored.images]
            except ValueError:
                pass  # other settings' report: start again

    def image_done(self, index: int, summary: ImageWhere | None) -> None:
        """Records that image ``index`` was added (its ``summary``) and rewrites the file."""
        if summary is None:
            return
        self.indices.append(int(index))
        report = self.accumulator.report() if self.accumulator.images else None
        images = [
            {"index": i, **w.to_dict()} for i, w in zip(self.indices, self.accumulator.images)
        ]
        data = {"report": None if report is None else report.to_dict(), "images": images}
        path = where_path(self.folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
