"""Dataset runs of the explorer's dataset page: a cascade sweep stored per image on disk.

A run is :func:`analysis.sweep.sweep` over a data source (SynthScapes val N, a folder of images
with masks, or a Cityscapes layout) for one model, cascades and methods. Every scored image is
written at once to ``<results dir>/<run key>/images/<index>.npz`` (its confusion matrices,
costs and per-class effective-weight sums) plus a thumbnail PNG, so a stopped or interrupted
run keeps what it finished, and reopening the same settings reads the files back instead of
computing. The run key is a digest of the model's identity, the data's identity (folder
listings included), the cascades and the methods.

Everything here is plain data and files: the explorer's page only draws it. Files are read
with ``numpy.load(allow_pickle=False)`` and JSON; nothing is unpickled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

import hmsa_core
from analysis.cascades import Cascade, format_cascade, row_label, union_scales
from analysis.dataset_sources import DataSource, labelled_indices
from analysis.metrics import scores_from_matrix
from analysis.scale_stats import ScalePreference, preference_from_sums, weight_sums
from analysis.sweep import (
    BASE_COLUMNS,
    IOU_PREFIX,
    ImageDone,
    SweepTable,
    _Accumulator,
    sweep,
    sweep_keys,
)
from analysis.where_runs import RunWhere, RunWhereWriter, load_run_where
from hmsa_core.data.sample import SampleView, SegmentationSample
from hmsa_core.labels import LabelSet, label_set_for, label_set_from_dict, label_set_to_dict
from hmsa_core.models.base import MultiScaleSegmenter

#: Environment variable naming the folder dataset runs are stored in.
RESULTS_DIR_ENV = "HMSA_RESULTS_DIR"
#: Where runs go when the variable is unset (ignored by git).
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results_cache"
#: Longer side of the stored thumbnails, in pixels.
THUMB_SIDE = 160
#: Largest sweep CSV :func:`load_sweep_csv` reads.
MAX_CSV_BYTES = 8 * 2**20
#: ``(done, total, seconds so far)`` progress callback of :func:`run_dataset`; True stops.
RunProgress = Callable[[int, int, float], bool | None]


def results_dir() -> Path:
    """Returns the folder runs are stored in: env ``HMSA_RESULTS_DIR``, else ``results_cache/``
    at the repository root."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or DEFAULT_RESULTS_DIR)


# --------------------------------------------------------------------------- data sources


# --------------------------------------------------------------------------- run settings


@dataclass(frozen=True)
class RunSpec:
    """The settings that name a run.

    Attributes:
        model_name: the model's display name.
        model_id: identity of its weights (e.g. path, modification time and size).
        data: the data source.
        cascades: the cascades, each ascending.
        methods: merge methods as asked (``"single"`` is always added: the image ranking
            compares against every single scale).
        flip: also score every cascade and method with flip (each scale run on the mirrored
            image too, DESIGN 1.6): the flip axis, one more row per cascade and method.
    """

    model_name: str
    model_id: str
    data: DataSource
    cascades: tuple[Cascade, ...]
    methods: tuple[str, ...]
    flip: bool = False

    @property
    def sweep_methods(self) -> tuple[str, ...]:
        """Returns the methods the sweep runs: :attr:`methods` plus ``"single"``."""
        return self.methods if "single" in self.methods else (*self.methods, "single")

    def key(self) -> str:
        """Returns the run's folder name: a digest of model identity, data identity, cascades
        and methods (20 hex digits; worked out once per spec, as a folder's listing is read)."""
        return self._key

    @cached_property
    def _key(self) -> str:
        ident = {
            "model": self.model_id,
            "data": self.data.identity(),
            "cascades": [list(c) for c in self.cascades],
            "methods": list(self.sweep_methods),
            **({"flip": True} if self.flip else {}),  # runs without flip keep their folders
        }
        text = json.dumps(ident, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def describe(self) -> str:
        """Returns e.g. ``"hmsa-lite on SynthScapes val, 8 scenes ...; cascades (0.5, 1) ..."``."""
        cascades = " ".join(f"({format_cascade(c, ', ')})" for c in self.cascades)
        return (
            f"{self.model_name} on {self.data.describe()}; cascades {cascades}; "
            f"methods {', '.join(self.methods)}"
        )


def make_spec(
    model_name: str,
    model_id: str,
    data: DataSource,
    cascades: Sequence[Sequence[float]],
    methods: Sequence[str],
    flip: bool = False,
) -> RunSpec:
    """Returns the :class:`RunSpec` of the settings (cascades sorted and deduplicated; ``flip``
    adds the flip axis).

    Raises:
        ValueError: no cascade or no method.
    """
    unique = sorted(
        {tuple(sorted(float(s) for s in c)) for c in cascades if c}, key=lambda c: (len(c), c)
    )
    if not unique:
        raise ValueError("pick at least one cascade")
    chosen = tuple(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if not chosen:
        raise ValueError("pick at least one merge method")
    return RunSpec(model_name, model_id, data, tuple(unique), chosen, bool(flip))


# --------------------------------------------------------------------------- stored run


@dataclass(frozen=True)
class ImageRecord:
    """One scored image of a run.

    Attributes:
        index: its index in the data source.
        name: its sample name.
        matrices: ``(K, C, C)`` confusion matrices, one per key of the run.
        scale_flops: ``(S,)`` FLOPs of each scale's pass on it.
        scale_seconds: ``(S,)`` seconds of each scale's pass.
        merge_seconds: ``(K,)`` seconds of each key's merge.
        weight_sums: ``(C, P)`` per class, the sum over its ground-truth pixels of each
            preference scale's effective weight (``P = 0`` without a preference merge).
        pixels: ``(C,)`` ground-truth pixels of each class.
        thumbnail: path of its thumbnail PNG.
        flip_matrices: a flip run's ``(K, C, C)`` matrices of each key's flip merge, else
            ``None``.
        flip_scale_flops: ``(S,)`` FLOPs of each scale's mirrored pass (flip runs).
        flip_scale_seconds: ``(S,)`` seconds of each scale's mirrored pass (flip runs).
        flip_merge_seconds: ``(K,)`` seconds of each key's flip merge (flip runs).
    """

    index: int
    name: str
    matrices: np.ndarray
    scale_flops: np.ndarray
    scale_seconds: np.ndarray
    merge_seconds: np.ndarray
    weight_sums: np.ndarray
    pixels: np.ndarray
    thumbnail: Path
    flip_matrices: np.ndarray | None = None
    flip_scale_flops: np.ndarray | None = None
    flip_scale_seconds: np.ndarray | None = None
    flip_merge_seconds: np.ndarray | None = None

    def miou(self, key: int) -> float:
        """Returns this image's mIoU in [0, 1] for key ``key`` (NaN when it did not merge)."""
        matrix = self.matrices[key]
        return scores_from_matrix(matrix).miou if matrix.sum() else math.nan


@dataclass(frozen=True)
class ImageGain:
    """One image ranked by how much the chosen merge beats the best single scale.

    Attributes:
        index: its index in the data source.
        name: its sample name.
        merged_miou: mIoU of the chosen merge on the chosen cascade, in [0, 1].
        best_single_miou: mIoU of the best single scale of that cascade on this image.
        best_single_scale: that scale.
        gain: ``merged_miou - best_single_miou``.
        thumbnail: path of its thumbnail PNG.
    """

    index: int
    name: str
    merged_miou: float
    best_single_miou: float
    best_single_scale: float
    gain: float
    thumbnail: Path


@dataclass(frozen=True)
class DatasetRun:
    """A run as stored on disk: its settings and every image it scored so far.

    Attributes:
        spec: the settings.
        folder: where it is stored.
        keys: the (cascade, method) pairs of the sweep, in matrix order.
        scales: ``(S,)`` the union of the cascades, ascending.
        preference_scales: the cascade the scale preference is measured on (may be empty).
        preference_method: the merge whose effective weights it uses.
        labels: the model's label set.
        total: images the run covers when complete.
        records: the scored images, by index.
        notes: key index -> why that key cannot merge.
        stopped: True when the user stopped it before the end.
    """

    spec: RunSpec
    folder: Path
    keys: tuple[tuple[Cascade, str], ...]
    scales: Cascade
    preference_scales: Cascade
    preference_method: str
    labels: LabelSet
    total: int
    records: tuple[ImageRecord, ...] = ()
    notes: dict[int, str] = field(default_factory=dict)
    stopped: bool = False

    @property
    def done(self) -> int:
        """Returns how many images are scored."""
        return len(self.records)

    @property
    def complete(self) -> bool:
        """Returns True when every image of the data source is scored."""
        return self.done >= self.total

    def where(self) -> RunWhere | None:
        """Returns the run's where-report (object size, boundaries, calibration over the scored
        images, and each image's small-object recall gain; :mod:`analysis.where_runs`), or
        ``None`` when none is stored."""
        return load_run_where(self.folder)

    def status(self) -> str:
        """Returns a sentence saying how many images the results cover."""
        if self.complete:
            return f"Complete: {self.done} of {self.total} image(s)."
        how = "Stopped" if self.stopped else "Interrupted"
        return f"{how} after {self.done} of {self.total} image(s): the results cover those only."

    def table(self) -> SweepTable:
        """Returns the :class:`~analysis.sweep.SweepTable` of the scored images (per-image means,
        the same sums the command-line sweep makes).

        Raises:
            ValueError: no image is scored yet.
        """
        if not self.records:
            raise ValueError("no image scored yet: run the sweep first")
        acc = _Accumulator(self.keys, self.scales, self.labels.num_classes)
        for record in self.records:
            acc.matrices += record.matrices.astype(np.int64)
            acc.merge_seconds += record.merge_seconds
            acc.scale_flops += record.scale_flops.astype(np.int64)
            acc.scale_seconds += record.scale_seconds
        acc.num_images = len(self.records)
        acc.notes = dict(self.notes)
        for index in self.notes:
            acc.failed[index] = 1
        table = acc.table(self.labels)
        flip = self._flip_accumulator()
        if flip is None:
            return table
        rows = (replace(r, flip=True) for r in flip.table(self.labels).rows)
        return replace(table, rows=(*table.rows, *rows))

    def _flip_accumulator(self) -> _Accumulator | None:
        """Returns the sums of the flip rows (costs of both passes of each scale), or ``None``
        when the run has no flip axis or an image lacks it."""
        if not self.spec.flip or any(r.flip_matrices is None for r in self.records):
            return None
        acc = _Accumulator(self.keys, self.scales, self.labels.num_classes)
        for record in self.records:
            acc.matrices += record.flip_matrices.astype(np.int64)  # type: ignore[union-attr]
            acc.merge_seconds += record.flip_merge_seconds  # type: ignore[arg-type]
            acc.scale_flops += record.scale_flops + record.flip_scale_flops  # type: ignore[operator]
            acc.scale_seconds += record.scale_seconds + record.flip_scale_seconds  # type: ignore[operator]
        acc.num_images = len(self.records)
        acc.notes = dict(self.notes)
        for index in self.notes:
            acc.failed[index] = 1
        return acc

    def shown_table(self) -> SweepTable:
        """Returns :meth:`table` without the ``single:<s>`` rows the run added to its multi-scale
        cascades for the image ranking only (kept when ``"single"`` was asked for; a one-scale
        cascade's one row is always kept).

        Raises:
            ValueError: no image is scored yet.
        """
        table = self.table()
        if "single" in self.spec.methods:
            return table
        rows = tuple(
            r for r in table.rows if len(r.cascade) == 1 or not r.method.startswith("single:")
        )
        return SweepTable(rows, table.labels, table.num_images, table.reference)

    def preference(self) -> ScalePreference | None:
        """Returns the per-class scale preference over the scored images (ground-truth pixels),
        or ``None`` when the run measured none."""
        if not self.preference_scales or not self.records:
            return None
        sums = sum(r.weight_sums for r in self.records)
        pixels = sum(r.pixels for r in self.records)
        return preference_from_sums(
            self.preference_scales,
            np.asarray(sums),
            np.asarray(pixels),
            self.labels,
            "ground truth",
            len(self.records),
        )

    def ranking_key(self) -> tuple[Cascade, str] | None:
        """Returns the (cascade, method) the images are ranked by: the preference merge on the
        largest cascade, or ``None`` when no multi-scale merge of the run can be ranked."""
        if not self.preference_method:
            return None
        cascades = [c for c, m in self.keys if m == self.preference_method and len(c) > 1]
        if not cascades:
            return None
        return max(cascades, key=lambda c: (len(c), c)), self.preference_method

    def ranking(self) -> list[ImageGain]:
        """Returns the scored images sorted by the gain of :meth:`ranking_key` over the best
        single scale of its cascade (largest gain first; empty when nothing can be ranked)."""
        chosen = self.ranking_key()
        if chosen is None:
            return []
        cascade, method = chosen
        key_index = {k: i for i, k in enumerate(self.keys)}
        merged = key_index[(cascade, method)]
        singles = {
            s: key_index[(cascade, f"single:{s:g}")]
            for s in cascade
            if (cascade, f"single:{s:g}") in key_index
        }
        gains = []
        for record in self.records:
            single = {s: record.miou(i) for s, i in singles.items()}
            single = {s: v for s, v in single.items() if not math.isnan(v)}
            value = record.miou(merged)
            if not single or math.isnan(value):
                continue
            best = max(single, key=lambda s: single[s])
            gains.append(
                ImageGain(
                    record.index,
                    record.name,
                    value,
                    single[best],
                    best,
                    value - single[best],
                    record.thumbnail,
                )
            )
        return sorted(gains, key=lambda g: (-g.gain, g.index))


def preference_merge(model: MultiScaleSegmenter) -> str:
    """Returns the merge whose effective weights describe ``model``: ``"hierarchical"`` with
    an attention head, ``"explicit"`` for an explicit-attention model, else ``""`` (none)."""
    from hmsa_core.merge import ExplicitMerger

    if model.has_attention:
        return "hierarchical"
    if isinstance(model, ExplicitMerger):
        return "explicit"
    return ""


def _preference_scales(spec: RunSpec, method: str) -> Cascade:
    if not method or method not in spec.sweep_methods:
        return ()
    multi = [c for c in spec.cascades if len(c) > 1]
    return max(multi, key=lambda c: (len(c), c)) if multi else ()


def _meta_path(folder: Path) -> Path:
    return folder / "run.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _thumbnail_png(rgb: np.ndarray) -> bytes:
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def thumbnail_uri(path: Path) -> str:
    """Returns a ``data:image/png;base64,...`` URI of a thumbnail file ("" when unreadable)."""
    import base64

    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return ""


def _write_meta(run: DatasetRun) -> None:
    meta = {
        "format": 1,
        "spec": {
            "model_name": run.spec.model_name,
            "model_id": run.spec.model_id,
            "data": run.spec.data.to_dict(),
            "cascades": [list(c) for c in run.spec.cascades],
            "methods": list(run.spec.methods),
            "flip": run.spec.flip,
        },
        "keys": [[list(c), m] for c, m in run.keys],
        "scales": list(run.scales),
        "preference_scales": list(run.preference_scales),
        "preference_method": run.preference_method,
        "labels": label_set_to_dict(run.labels),
        "total": run.total,
        "notes": {str(k): v for k, v in run.notes.items()},
        "stopped": run.stopped,
    }
    run.folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(_meta_path(run.folder), json.dumps(meta, indent=1).encode())


def _record_path(folder: Path, index: int) -> Path:
    return folder / "images" / f"{index:06d}.npz"


def _write_record(
    folder: Path, done: ImageDone, index: int, pref: tuple[Cascade, str], model: MultiScaleSegmenter
) -> None:
    """Writes one image's matrices, costs, preference sums and thumbnail (atomically)."""
    scales = tuple(sorted(done.per_scale))
    num_classes = done.matrices.shape[1]
    pref_scales, pref_method = pref
    sums = np.zeros((num_classes, len(pref_scales)), dtype=np.float64)
    pixels = np.zeros(num_classes, dtype=np.int64)
    if pref_scales and done.sample.mask is not None:
        try:
            merged = hmsa_core.merge(
                {s: done.per_scale[s] for s in pref_scales},
                pref_method,
                output_size=done.size,
                model=model,
            )
            weights = {s: merged.weights[s][0].float().cpu().numpy() for s in pref_scales}
            sums, pixels = weight_sums(weights, done.sample.mask, num_classes)
        except ValueError:
            pass  # the method cannot merge this cascade: no preference for this image
    path = _record_path(folder, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    flips: dict[str, np.ndarray] = {}
    if done.flip_matrices is not None and done.flip_merge_seconds is not None:
        mirrored = [done.per_scale[s].flipped_cost for s in scales]
        flips = {
            "flip_matrices": done.flip_matrices.astype(np.int32),
            "flip_scale_flops": np.array([c.flops if c else 0 for c in mirrored], np.int64),
            "flip_scale_seconds": np.array([c.seconds if c else 0.0 for c in mirrored]),
            "flip_merge_seconds": np.asarray(done.flip_merge_seconds, dtype=np.float64),
        }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        index=np.int64(index),
        name=np.array(done.sample.name),
        matrices=done.matrices.astype(np.int32),
        scale_flops=np.array([done.per_scale[s].cost.flops for s in scales], dtype=np.int64),
        scale_seconds=np.array([done.per_scale[s].cost.seconds for s in scales]),
        merge_seconds=np.asarray(done.merge_seconds, dtype=np.float64),
        weight_sums=sums,
        pixels=pixels,
        **flips,
    )
    _atomic_write(path.with_suffix(".png"), _thumbnail_png(done.sample.image))
    _atomic_write(path, buffer.getvalue())


#: The arrays a flip run's image record adds.
FLIP_ARRAYS = ("flip_matrices", "flip_scale_flops", "flip_scale_seconds", "flip_merge_seconds")


def _read_record(path: Path, keys: int, scales: int, classes: int, pref: int) -> ImageRecord:
    with np.load(path, allow_pickle=False) as data:
        record = ImageRecord(
            index=int(data["index"]),
            name=str(data["name"]),
            matrices=data["matrices"].astype(np.int64),
            scale_flops=data["scale_flops"].astype(np.int64),
            scale_seconds=data["scale_seconds"].astype(np.float64),
            merge_seconds=data["merge_seconds"].astype(np.float64),
            weight_sums=data["weight_sums"].astype(np.float64),
            pixels=data["pixels"].astype(np.int64),
            thumbnail=path.with_suffix(".png"),
            **{name: data[name] for name in FLIP_ARRAYS if name in data.files},
        )
    shapes = {
        "matrices": (record.matrices.shape, (keys, classes, classes)),
        "scale_flops": (record.scale_flops.shape, (scales,)),
        "merge_seconds": (record.merge_seconds.shape, (keys,)),
        "weight_sums": (record.weight_sums.shape, (classes, pref)),
        "pixels": (record.pixels.shape, (classes,)),
    }
    if record.flip_matrices is not None:
        shapes["flip_matrices"] = (record.flip_matrices.shape, (keys, classes, classes))
        shapes["flip_merge_seconds"] = (np.shape(record.flip_merge_seconds), (keys,))
        shapes["flip_scale_flops"] = (np.shape(record.flip_scale_flops), (scales,))
    for what, (got, want) in shapes.items():
        if got != want:
            raise ValueError(f"{path.name}: {what} has shape {got}, expected {want}")
    return record


def load_run(spec_or_folder: RunSpec | str | os.PathLike) -> DatasetRun | None:
    """Returns the stored run of ``spec`` (or in a run folder), or ``None`` when none is stored.

    Unreadable image records are skipped (they are scored again by the next run).

    Raises:
        ValueError: the run's ``run.json`` exists but is unreadable.
    """
    if isinstance(spec_or_folder, RunSpec):
        folder = results_dir() / spec_or_folder.key()
    else:
        folder = Path(spec_or_folder)
    meta_path = _meta_path(folder)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        raw = meta["spec"]
        spec = RunSpec(
            model_name=str(raw["model_name"]),
            model_id=str(raw["model_id"]),
            data=DataSource.from_dict(raw["data"]),
            cascades=tuple(tuple(float(s) for s in c) for c in raw["cascades"]),
            methods=tuple(str(m) for m in raw["methods"]),
            flip=bool(raw.get("flip", False)),
        )
        keys = tuple((tuple(float(s) for s in c), str(m)) for c, m in meta["keys"])
        run = DatasetRun(
            spec=spec,
            folder=folder,
            keys=keys,
            scales=tuple(float(s) for s in meta["scales"]),
            preference_scales=tuple(float(s) for s in meta["preference_scales"]),
            preference_method=str(meta["preference_method"]),
            labels=label_set_from_dict(meta["labels"]),
            total=int(meta["total"]),
            notes={int(k): str(v) for k, v in meta["notes"].items()},
            stopped=bool(meta["stopped"]),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"stored run {folder.name} is unreadable ({exc}); delete the folder {folder}"
        ) from exc
    records = []
    for path in sorted((folder / "images").glob("*.npz")):
        try:
            records.append(
                _read_record(
                    path,
                    len(run.keys),
                    len(run.scales),
                    run.labels.num_classes,
                    len(run.preference_scales),
                )
            )
        except (OSError, ValueError, KeyError):
            continue
    records.sort(key=lambda r: r.index)
    return DatasetRun(**{**run.__dict__, "records": tuple(records)})


class _Remaining(SampleView):
    """The images of a data source a run has not scored yet, in order."""

    def __init__(self, data: Sequence[SegmentationSample], indices: list[int]) -> None:
        self.data, self.indices = data, indices

    def __len__(self) -> int:
        return len(self.indices)

    def _item(self, i: int) -> SegmentationSample:
        return self.data[self.indices[i]]


def run_dataset(
    spec: RunSpec,
    model: MultiScaleSegmenter,
    *,
    progress: RunProgress | None = None,
) -> DatasetRun:
    """Runs (or resumes) the sweep of ``spec`` and returns the stored :class:`DatasetRun`.

    Images already stored for these settings are not run again; every newly scored image is
    written before the next starts, so an interrupted run keeps its images. ``progress`` is
    called after each image with ``(done, total, seconds)``; returning True stops the run
    after that image (the run is then marked stopped).

    Raises:
        ValueError: bad data source, cascade or method, or an image whose mask does not fit.
    """
    data = spec.data.open()
    limit = spec.data.limit()
    labelled = labelled_indices(data, len(data) if limit is None else min(len(data), limit))
    total = len(labelled)
    if total < 1:
        raise ValueError(f"{spec.data.describe()} holds no image with a mask")
    folder = results_dir() / spec.key()
    stored = load_run(folder)
    if stored is None:
        method = preference_merge(model)
        pref_scales = _preference_scales(spec, method)
        stored = DatasetRun(
            spec=spec,
            folder=folder,
            keys=sweep_keys(spec.cascades, spec.sweep_methods),
            scales=union_scales(spec.cascades),
            preference_scales=pref_scales,
            preference_method=method if pref_scales else "",
            labels=model.labels,
            total=total,
        )
    if stored.labels.num_classes != model.num_classes:
        raise ValueError(
            f"the stored run in {folder} has {stored.labels.num_classes} classes but the model "
            f"has {model.num_classes}; delete that folder to run again"
        )
    stored = DatasetRun(**{**stored.__dict__, "stopped": False, "total": total})
    _write_meta(stored)
    done_indices = {r.index for r in stored.records}
    todo = [i for i in labelled if i not in done_indices]
    if not todo:
        return load_run(folder) or stored
    notes: dict[int, str] = dict(stored.notes)
    start = time.perf_counter()
    state = {"stopped": False, "done": len(done_indices)}
    pref = (stored.preference_scales, stored.preference_method)
    where = RunWhereWriter(folder, stored.labels, stored.scales, model)

    def on_image(done: ImageDone) -> bool:
        index = todo[done.index]
        _write_record(folder, done, index, pref, model)
        where.image_done(index, done.where)
        if done.notes != notes:
            notes.clear()
            notes.update(done.notes)
            _write_meta(DatasetRun(**{**stored.__dict__, "notes": dict(notes)}))
        state["done"] += 1
        stop = (
            bool(progress(state["done"], total, time.perf_counter() - start)) if progress else False
        )
        state["stopped"] = stop and state["done"] < total
        return stop

    sweep(
        model,
        _Remaining(data, todo),
        spec.cascades,
        spec.sweep_methods,
        progress=False,
        shard=False,
        on_image=on_image,
        where=where.accumulator,
        flips=(False, True) if spec.flip else (False,),
    )
    final = DatasetRun(**{**stored.__dict__, "notes": dict(notes), "stopped": state["stopped"]})
    _write_meta(final)
    return load_run(folder) or final


# --------------------------------------------------------------------------- sweep CSVs


def _labels_from_columns(columns: Sequence[str]) -> LabelSet:
    names = tuple(c[len(IOU_PREFIX) :] for c in columns if c.startswith(IOU_PREFIX))
    if not names:
        raise ValueError("the CSV has no per-class columns (iou_<class>)")
    known = label_set_for(len(names))
    if known.names == names:
        return known
    return LabelSet("from_csv", names, tuple(known.colors[: len(names)]))


def load_sweep_csv(source: bytes | str | os.PathLike) -> SweepTable:
    """Returns the :class:`~analysis.sweep.SweepTable` of a CSV written by
    ``python -m analysis.sweep`` (file path or its bytes); class names come from its
    ``iou_<class>`` columns.

    Raises:
        ValueError: not UTF-8 text, larger than :data:`MAX_CSV_BYTES`, missing sweep columns or
            unreadable values.
    """
    raw = Path(source).read_bytes() if not isinstance(source, bytes) else source
    if len(raw) > MAX_CSV_BYTES:
        raise ValueError(
            f"the CSV is {len(raw) / 2**20:.1f} MiB; sweep CSVs over {MAX_CSV_BYTES // 2**20} MiB are refused"
        )
    try:
        text = raw.decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(text)), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(
            f"not a sweep CSV (UTF-8 text from python -m analysis.sweep): {exc}"
        ) from exc
    missing = [c for c in BASE_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"not a sweep CSV: missing column(s) {', '.join(missing)}")
    labels = _labels_from_columns(header)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.csv"
        path.write_text(text, encoding="utf-8")
        try:
            table = SweepTable.from_csv(path, labels)
        except csv.Error as exc:
            raise ValueError(f"unreadable sweep CSV: {exc}") from exc
    if not table.rows:
        raise ValueError("the sweep CSV has no rows")
    return table


def per_class_iou_frame_rows(table: SweepTable) -> tuple[list[str], list[list[float | None]]]:
    """Returns ``(headers, rows)``: one row per class present in any row, then one column per
    available (cascade, method) named by :func:`~analysis.cascades.row_label` (a one-scale
    cascade once, ``"single 0.5"``), IoU in %; ``None`` where a class is absent."""
    rows = [r for r in table.rows if r.available]
    headers = ["class", *(row_label(r.cascade, r.label) for r in rows)]
    body: list[list[float | None]] = []
    for name in table.labels.names:
        values = [r.per_class_iou.get(name) for r in rows]
        if all(v is None or math.isnan(v) for v in values):
            continue
        body.append(
            [name, *(None if v is None or math.isnan(v) else round(100 * v, 2) for v in values)]
        )  # type: ignore[list-item]
    return headers, body
