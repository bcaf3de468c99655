"""Cascade sweep: every cascade x merge method over a dataset, from one forward pass per scale.

For each image the model runs once per distinct scale of the union of all cascades
(:func:`hmsa_core.run_scales`); every requested cascade and method is then merged from those
outputs and scored into its own confusion matrix. A (cascade, method) pair the model cannot
merge (e.g. ``explicit`` on a cascade other than its training scales, ``hierarchical`` on a
model without attention) is reported as n/a, not an error.

Command line::

    python -m analysis.sweep --model hmsa-lite --data synthscapes:val:100 \\
        --cascades "0.5;1;2;0.5,1;0.5,1,2;0.25,0.5,1,2" \\
        --methods hierarchical,mean,max,single,explicit --out results.csv --md results.md

Under ``torchrun --nproc_per_node N`` images are sharded across ranks (rank r takes indices
r, r+N, ...), and confusion matrices, FLOPs and seconds are all-reduced; rank 0 writes.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

import hmsa_core
from analysis.cascades import (
    Cascade,
    all_subsets,
    format_cascade,
    parse_cascade,
    parse_cascades,
    sweep_methods,
    union_scales,
)
from analysis.cli_args import add_cascades_argument, with_example
from analysis.metrics import ConfusionMatrix, nan_to_none, scores_from_matrix
from hmsa_core.cache import ByteLRUCache
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.gating import GATE_CRITERIA, is_approximate
from hmsa_core.inference import InferenceResult, prepare_input, run_scales
from hmsa_core.labels import LabelSet
from hmsa_core.merge import parse_method
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.precision import PRECISION_CHOICES
from hmsa_core.train import distributed

if TYPE_CHECKING:  # pragma: no cover - types only
    from analysis.where_scales import ImageWhere, WhereAccumulator, WhereImage

REFERENCE_GT = "ground truth"
REFERENCE_AGREEMENT = "agreement with full cascade"
DEFAULT_CASCADES = "0.5;1;2;0.5,1;0.5,1,2;0.25,0.5,1,2"
DEFAULT_METHODS = "hierarchical,mean,max,single,explicit"
BASE_COLUMNS = (
    "cascade",
    "method",
    "miou",
    "pixel_acc",
    "gflops",
    "seconds",
    "images",
    "reference",
    "note",
)
IOU_PREFIX = "iou_"
#: Optional CSV column: the attention-gating threshold of a row (absent or empty: 0).
GATE_COLUMN = "gate"
#: Optional CSV column: 1 when the row's merge includes the mirrored passes (absent: 0).
FLIP_COLUMN = "flip"
#: Optional CSV column: the gate criterion of a gated row (absent: ``"bound"``; DESIGN 1.8).
GATE_BY_COLUMN = "gate_by"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SweepRow:
    """One (cascade, method) of a sweep.

    Attributes:
        cascade: the scales, ascending.
        method: merge method, e.g. ``"hierarchical"`` or ``"single:0.5"``.
        miou: mean IoU in [0, 1] (against the table's reference); NaN when n/a.
        pixel_accuracy: correct / labelled pixels; NaN when n/a.
        per_class_iou: class name -> IoU, for classes present in reference or prediction.
        gflops: forward-pass GFLOPs per image actually spent on the cascade's scales (gated
            rows count only the tiles computed).
        seconds: seconds per image: the cascade's forward passes plus this merge; NaN when n/a.
        note: why the row is n/a (empty otherwise).
        gate: the attention-gating threshold the cascade ran with (0: ungated; gated rows are
            hierarchical merges, see :mod:`hmsa_core.gating`).
        flip: True when the merge is the mean of the plain and the mirrored passes' merges
            (DESIGN 1.6); its GFLOPs and seconds count both passes of each scale.
        gate_by: the gate criterion of a gated row (``"bound"``, ``"attention"``,
            ``"confidence"``; empty for an ungated row).
    """

    cascade: tuple[float, ...]
    method: str
    miou: float
    pixel_accuracy: float
    per_class_iou: dict[str, float]
    gflops: float
    seconds: float
    note: str = ""
    gate: float = 0.0
    flip: bool = False
    gate_by: str = ""

    @property
    def label(self) -> str:
        """Returns the method with the gate and flip, e.g. ``"hierarchical (gate 0.3,
        attention)"``."""
        gate = f" (gate {self.gate:g}, {self.gate_by or 'bound'})" if self.gate else ""
        return self.method + gate + (" + flip" if self.flip else "")

    @property
    def available(self) -> bool:
        """Returns True when the method could be merged on this cascade (the row has scores)."""
        return not math.isnan(self.miou)

    def scores_dict(self) -> dict:
        """Returns ``{"miou", "pixel_accuracy", "per_class_iou"}`` (JSON-ready, NaN as None),
        the form :meth:`~analysis.metrics.SegmentationScores.as_dict` gives and checkpoint
        metadata stores."""
        return {
            "miou": nan_to_none(self.miou),
            "pixel_accuracy": nan_to_none(self.pixel_accuracy),
            "per_class_iou": {name: nan_to_none(v) for name, v in self.per_class_iou.items()},
        }


@dataclass(frozen=True)
class SweepTable:
    """A sweep's rows, with what they were scored against.

    Attributes:
        rows: one :class:`SweepRow` per (cascade, method), in sweep order.
        labels: the label set (class names of the per-class columns).
        num_images: images scored.
        reference: ``"ground truth"`` or ``"agreement with full cascade"`` (the ``miou`` column
            then measures agreement with the full cascade's hierarchical prediction).
    """

    rows: tuple[SweepRow, ...]
    labels: LabelSet
    num_images: int
    reference: str = REFERENCE_GT

    def row(
        self,
        cascade: Iterable[float],
        method: str,
        gate: float = 0.0,
        flip: bool = False,
        gate_by: str | None = None,
    ) -> SweepRow:
        """Returns the row of ``cascade``, ``method``, ``gate``, ``flip`` and gate criterion
        ``gate_by`` (``None``: a gated row of any criterion; for a one-scale cascade any
        method names its ``single:<s>`` row); ``KeyError`` when absent."""
        key = tuple(sorted(float(s) for s in cascade))
        methods = {method, *(sweep_methods(key, [method]) if len(key) == 1 else ())}
        for row in self.rows:
            same = (row.cascade, row.gate, row.flip) == (key, float(gate), flip)
            by = gate_by is None or not row.gate or row.gate_by == gate_by
            if same and by and row.method in methods:
                return row
        raise KeyError(f"no row for cascade {format_cascade(key)} and method {method!r}")

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Writes one line per row (n/a values empty); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = [
            *BASE_COLUMNS,
            GATE_COLUMN,
            FLIP_COLUMN,
            GATE_BY_COLUMN,
            *(IOU_PREFIX + name for name in self.labels.names),
        ]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow(
                    [
                        format_cascade(row.cascade),
                        row.method,
                        _fmt(row.miou),
                        _fmt(row.pixel_accuracy),
                        _fmt(row.gflops),
                        _fmt(row.seconds),
                        self.num_images,
                        self.reference,
                        row.note,
                        repr(float(row.gate)),
                        int(row.flip),
                        row.gate_by,
                        *(
                            _fmt(row.per_class_iou.get(name, math.nan))
                            for name in self.labels.names
                        ),
                    ]
                )
        return path

    @classmethod
    def from_csv(cls, path: str | os.PathLike, labels: LabelSet) -> SweepTable:
        """Returns the table written by :meth:`to_csv`.

        Raises:
            ValueError: missing columns or unreadable values.
        """
        path = Path(path)
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in BASE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"{path.name} is not a sweep CSV: missing column(s) {', '.join(missing)}"
                )
            rows, num_images, reference = [], 0, REFERENCE_GT
            try:
                for line in reader:
                    per_class = {
                        name: float(line[IOU_PREFIX + name])
                        for name in labels.names
                        if line.get(IOU_PREFIX + name)
                    }
                    rows.append(
                        SweepRow(
                            cascade=parse_cascade(line["cascade"]),
                            method=line["method"],
                            miou=_parse(line["miou"]),
                            pixel_accuracy=_parse(line["pixel_acc"]),
                            per_class_iou=per_class,
                            gflops=_parse(line["gflops"]),
                            seconds=_parse(line["seconds"]),
                            note=line["note"] or "",
                            gate=_parse(line.get(GATE_COLUMN)) if line.get(GATE_COLUMN) else 0.0,
                            flip=line.get(FLIP_COLUMN, "") in ("1", "True"),
                            gate_by=_gate_by(line),
                        )
                    )
                    num_images = int(line["images"])
                    reference = line["reference"] or REFERENCE_GT
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path.name}: unreadable sweep row: {exc}") from exc
        return cls(tuple(rows), labels, num_images, reference)

    def to_markdown(self, per_class: bool = False) -> str:
        """Returns a markdown table: cascade, method, mIoU (%), pixel accuracy (%), GFLOPs and
        seconds per image (and every class's IoU when ``per_class``); n/a rows say so."""
        score = "mIoU" if self.reference == REFERENCE_GT else "agreement mIoU"
        header = ["cascade", "method", f"{score} (%)", "pixel acc (%)", "GFLOPs/img", "s/img"]
        if per_class:
            header += list(self.labels.names)
        gated = any(row.gate for row in self.rows)
        if gated:  # gated rows against their cascade's ungated hierarchical row
            header += ["% of ungated GFLOPs", "% of ungated s"]
        lines = [
            f"Scored against {self.reference} on {self.num_images} image(s).",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
        ]
        for row in self.rows:
            cells = [
                format_cascade(row.cascade, ", "),
                row.label,
                _pct(row.miou),
                _pct(row.pixel_accuracy),
                f"{row.gflops:.2f}",
                "n/a" if math.isnan(row.seconds) else f"{row.seconds:.3f}",
            ]
            if per_class:
                cells += [_pct(row.per_class_iou.get(name, math.nan)) for name in self.labels.names]
            if gated:
                cells += self._shares(row)
            lines.append("| " + " | ".join(cells) + " |")
        notes = sorted({row.note for row in self.rows if row.note})
        if notes:
            lines += ["", *(f"n/a: {note}" for note in notes)]
        return "\n".join(lines) + "\n"

    def ungated(self, row: SweepRow) -> SweepRow | None:
        """Returns the ungated hierarchical row of ``row``'s cascade and flip (``None`` when
        the table has none): what a gated row's GFLOPs and seconds compare to."""
        try:
            return self.row(row.cascade, "hierarchical", 0.0, row.flip)
        except KeyError:
            return None

    def _shares(self, row: SweepRow) -> list[str]:
        """Returns the markdown cells of a gated row's GFLOPs and seconds as % of its ungated
        row (empty for other rows, or without one)."""
        base = self.ungated(row) if row.gate else None
        if base is None or not base.gflops or math.isnan(base.seconds) or not base.seconds:
            return ["", ""]
        return [f"{100 * row.gflops / base.gflops:.0f}", f"{100 * row.seconds / base.seconds:.0f}"]


def _gate_by(line: dict) -> str:
    """Returns the gate criterion of a CSV line: its column, else ``"bound"`` for a gated row."""
    value = (line.get(GATE_BY_COLUMN) or "").strip()
    gated = bool(line.get(GATE_COLUMN)) and float(line[GATE_COLUMN] or 0) > 0
    return value or ("bound" if gated else "")


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _parse(text: str | None) -> float:
    return math.nan if text in (None, "") else float(text)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"


@dataclass(frozen=True)
class ImageDone:
    """What :func:`sweep` hands its ``on_image`` hook after scoring one image.

    Attributes:
        index: the image's index in the dataset.
        sample: the scored sample (image ``(H, W, 3)`` uint8, mask ``(H, W)`` int64).
        keys: the sweep's (cascade, method) pairs, in the order of ``matrices``.
        matrices: ``(K, C, C)`` int64 confusion matrices of this image alone, one per key
            (rows ground truth, columns prediction; zeros for a key that cannot merge).
        merge_seconds: ``(K,)`` seconds each key's merge took on this image.
        notes: key index -> why that key cannot merge (so far in the sweep).
        per_scale: scale -> that scale's output (``(1, C, h, w)`` logits, ``(1, 1, h, w)``
            attention or ``None``), to derive more per-image products without a pass.
        size: ``(H, W)`` of the image.
        done: images scored so far, this one included.
        total: images the sweep will visit.
        where: this image's where-analysis summary (small-object recall gain) when the sweep
            runs with a ``where`` accumulator, else ``None``.
        flip_matrices: with flip rows, ``(K, C, C)`` int64 confusion matrices of each key's
            flip merge (the mean of the plain and the mirrored merges) on this image, else
            ``None``; ``per_scale`` then holds each scale's mirrored pass too.
        flip_merge_seconds: with flip rows, ``(K,)`` seconds of each key's flip merge.
    """

    index: int
    sample: SegmentationSample
    keys: tuple[tuple[Cascade, str], ...]
    matrices: np.ndarray
    merge_seconds: np.ndarray
    notes: dict[int, str]
    per_scale: dict
    size: tuple[int, int]
    done: int
    total: int
    where: ImageWhere | None = None
    flip_matrices: np.ndarray | None = None
    flip_merge_seconds: np.ndarray | None = None


#: ``on_image`` hook of :func:`sweep`: return True to stop after this image.
ImageHook = Callable[[ImageDone], bool | None]


# --------------------------------------------------------------------------- accumulation


@dataclass
class _Accumulator:
    """Running sums of a sweep (one slot per (cascade, method) and per scale), reducible."""

    keys: tuple[tuple[Cascade, str], ...]
    scales: Cascade
    num_classes: int
    matrices: np.ndarray = field(init=False)
    merge_seconds: np.ndarray = field(init=False)
    failed: np.ndarray = field(init=False)
    scale_flops: np.ndarray = field(init=False)
    scale_seconds: np.ndarray = field(init=False)
    num_images: int = 0
    notes: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k, c = len(self.keys), self.num_classes
        self.matrices = np.zeros((k, c, c), dtype=np.int64)
        self.merge_seconds = np.zeros(k, dtype=np.float64)
        self.failed = np.zeros(k, dtype=np.int64)
        self.scale_flops = np.zeros(len(self.scales), dtype=np.int64)
        self.scale_seconds = np.zeros(len(self.scales), dtype=np.float64)

    def all_reduce(self) -> None:
        """Sums every counter over the ranks of the default process group (in place)."""
        import torch.distributed as dist

        device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
        ints = torch.from_numpy(
            np.concatenate(
                [self.matrices.ravel(), self.failed, self.scale_flops, [self.num_images]]
            )
        ).to(device)
        floats = torch.from_numpy(np.concatenate([self.merge_seconds, self.scale_seconds])).to(
            device
        )
        dist.all_reduce(ints)
        dist.all_reduce(floats)
        ints_np, floats_np = ints.cpu().numpy(), floats.cpu().numpy()
        k, s, m = len(self.keys), len(self.scales), self.matrices.size
        self.matrices = ints_np[:m].reshape(self.matrices.shape)
        self.failed = ints_np[m : m + k]
        self.scale_flops = ints_np[m + k : m + k + s]
        self.num_images = int(ints_np[-1])
        self.merge_seconds = floats_np[:k]
        self.scale_seconds = floats_np[k:]
        notes: list[dict[int, str] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(notes, self.notes)
        for part in notes:
            for index, note in (part or {}).items():
                self.notes.setdefault(index, note)

    def table(self, labels: LabelSet, reference: str = REFERENCE_GT) -> SweepTable:
        """Returns the :class:`SweepTable` of the sums (per-image means)."""
        n = max(self.num_images, 1)
        scale_index = {s: i for i, s in enumerate(self.scales)}
        rows = []
        for index, (cascade, method) in enumerate(self.keys):
            ids = [scale_index[s] for s in cascade]
            gflops = float(self.scale_flops[ids].sum()) / 1e9 / n
            if self.failed[index] or self.num_images == 0:
                note = self.notes.get(index, "no image scored")
                rows.append(
                    SweepRow(cascade, method, math.nan, math.nan, {}, gflops, math.nan, note)
                )
                continue
            scores = scores_from_matrix(self.matrices[index])
            per_class = {
                labels.names[c]: float(scores.iou[c])
                for c in range(self.num_classes)
                if scores.present[c]
            }
            seconds = (float(self.scale_seconds[ids].sum()) + float(self.merge_seconds[index])) / n
            rows.append(
                SweepRow(
                    cascade, method, scores.miou, scores.pixel_accuracy, per_class, gflops, seconds
                )
            )
        return SweepTable(tuple(rows), labels, self.num_images, reference)


def sweep_keys(
    cascades: Sequence[Sequence[float]], methods: Iterable[str]
) -> tuple[tuple[Cascade, str], ...]:
    """Returns every (cascade, method) pair in sweep order (``single`` expanded per scale; a
    one-scale cascade once, as ``single:<s>``, see :func:`~analysis.cascades.sweep_methods`)."""
    methods = tuple(methods)
    return tuple(
        (tuple(sorted(float(s) for s in c)), m)
        for c in cascades
        for m in sweep_methods(sorted(float(s) for s in c), methods)
    )


def _merge_pred(
    per_scale: dict,
    method: str,
    size: tuple[int, int],
    model: MultiScaleSegmenter | None,
    flip: bool = False,
    keep: list | None = None,
) -> torch.Tensor:
    """Returns the ``(H, W)`` arg-max prediction of one merge (B = 1); with ``flip`` of the
    mean of the plain and the mirrored passes' merges (``per_scale`` values are then
    :class:`~hmsa_core.results.ScaleResult` holding their flipped pass). Without ``flip`` the
    :class:`~hmsa_core.merge.MergeResult` is appended to ``keep`` when given."""
    merged = hmsa_core.merge(per_scale, method, output_size=size, model=model)
    logits = merged.logits
    if keep is not None and not flip:
        keep.append(merged)
    if flip:
        mirrored = {s: r.flipped for s, r in per_scale.items()}
        logits = (
            logits + hmsa_core.merge(mirrored, method, output_size=size, model=model).logits
        ) / 2
    return logits[0].max(0).indices  # = argmax(0), much faster on CPU


def _score_merges(
    acc: _Accumulator,
    per_scale: dict,
    gt: np.ndarray,
    size: tuple[int, int],
    model: MultiScaleSegmenter | None,
    flip: bool = False,
    where: WhereImage | None = None,
) -> None:
    """Merges every (cascade, method) of ``acc`` from ``per_scale`` (with the mirrored passes
    when ``flip``) and adds it to the sums; hands each plain merge to ``where`` too."""
    for index, (cascade, method) in enumerate(acc.keys):
        if acc.failed[index]:
            continue
        subset = {s: per_scale[s] for s in cascade}
        start = time.perf_counter()
        held: list | None = [] if where is not None else None
        try:
            pred = _merge_pred(subset, method, size, model, flip, held)
        except ValueError as exc:
            acc.failed[index] = 1
            acc.notes[index] = f"{method} on ({format_cascade(cascade, ', ')}): {exc}"
            continue
        acc.merge_seconds[index] += time.perf_counter() - start
        if where is not None and held:
            where.score(cascade, method, held.pop())
        cm = ConfusionMatrix(acc.num_classes)
        cm.update(pred, gt)
        acc.matrices[index] += cm.matrix


def _sweep_one(
    acc: _Accumulator,
    model: MultiScaleSegmenter,
    sample: SegmentationSample,
    scales: Cascade,
    precision: str,
    gated: dict[tuple[float, str, Cascade], _Accumulator] | None = None,
    flipped: _Accumulator | None = None,
    where: WhereImage | None = None,
) -> dict | None:
    """Runs one image once per scale (and once more mirrored for ``flipped``, the flip rows'
    sums) and adds every (cascade, method) of ``acc`` to the sums; returns the per-scale
    outputs, or ``None`` for an unlabelled sample (skipped)."""
    if sample.mask is None:
        return None
    prepared = prepare_input(sample.image, model)
    size = prepared.size
    if tuple(sample.mask.shape) != size:
        raise ValueError(
            f"image {sample.name}: mask is {sample.mask.shape[1]} x {sample.mask.shape[0]} "
            f"but the image is {size[1]} x {size[0]}"
        )
    cache = ByteLRUCache(1 << 62) if gated else None  # serves gated cascades' ungated passes
    flip = flipped is not None
    per_scale = run_scales(
        model, prepared.tensor, scales, cache=cache, precision=precision, flip=flip
    )
    gt = np.asarray(sample.mask, dtype=np.int64)
    for target, with_flip in ((acc, False), (flipped, True)) if flip else ((acc, False),):
        assert target is not None
        for j, s in enumerate(scales):
            for cost in per_scale[s].costs(with_flip):
                target.scale_flops[j] += cost.flops
                target.scale_seconds[j] += cost.seconds
        _score_merges(target, per_scale, gt, size, model, with_flip, None if with_flip else where)
        target.num_images += 1
    for (tau, criterion, cascade), gacc in (gated or {}).items():
        passes = run_scales(
            model,
            prepared.tensor,
            cascade,
            cache=cache,
            precision=precision,
            gate=tau,
            gate_by=criterion,
        )
        for j, s in enumerate(cascade):
            cost = passes[s].cost
            gacc.scale_flops[j] += cost.flops  # what this cascade spends run on its own
            gacc.scale_seconds[j] += cost.seconds
        _score_merges(gacc, passes, gt, size, model)
        gacc.num_images += 1
    return per_scale


def _raise_if_any_rank_failed(error: ValueError | None) -> None:
    """Raises ``ValueError`` on every rank when any rank of the process group failed."""
    import torch.distributed as dist

    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([0 if error is None else 1], dtype=torch.int64, device=device)
    dist.all_reduce(flag)
    if int(flag.item()) and error is None:
        raise ValueError("the sweep failed on another rank (see its error message)")


def _is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sweep(
    model: MultiScaleSegmenter,
    dataset: Sequence[SegmentationSample],
    cascades: Sequence[Sequence[float]],
    methods: Iterable[str] = DEFAULT_METHODS.split(","),
    *,
    limit: int | None = None,
    precision: str = "auto",
    progress: bool = True,
    shard: bool = True,
    on_image: ImageHook | None = None,
    gates: Sequence[float] = (),
    where: WhereAccumulator | None = None,
    flips: Sequence[bool] = (False,),
    gate_by: Sequence[str] = ("bound",),
) -> SweepTable:
    """Returns the :class:`SweepTable` of every cascade x method over ``dataset``.

    One forward pass per distinct scale of the union of ``cascades`` per image; every cascade
    and method is merged from those. Images without a mask are skipped. When a
    ``torch.distributed`` group of more than one rank is initialised and ``shard`` is True,
    rank ``r`` takes images ``r, r + N, ...`` and the sums are all-reduced, so every rank
    returns the whole table; with ``shard=False`` this process scores every image alone (as
    rank 0 does when it validates during DDP training).

    Args:
        model: the segmenter (runs where its parameters are).
        dataset: a sequence of samples with ``(H, W)`` trainId masks.
        cascades: the cascades to score.
        methods: merge methods; ``"single"`` expands to each scale of each cascade.
        limit: score only the first ``limit`` images.
        precision: ``"auto"`` (bf16 where the hardware has it, see :mod:`hmsa_core.precision`),
            ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA).
        progress: show a tqdm bar (on rank 0 only).
        shard: split the images over the ranks of an initialised process group.
        gates: attention-gating thresholds above 0 to add: for each, every cascade of two or
            more scales is run gated and merged hierarchically, one row each (``gate`` set,
            GFLOPs actually spent). Needs ``"hierarchical"`` in ``methods``.
        gate_by: the gate criteria (DESIGN 1.8) each gate runs with: one gated row per
            criterion, threshold and cascade (``gate_by`` set).
        on_image: called after each scored image with its :class:`ImageDone`; returning True
            stops the sweep there, and the table covers the images scored so far (a single
            process only: under a sharded process group the hook may not stop).
        where: a :class:`~analysis.where_scales.WhereAccumulator` over the union of the
            cascades' scales, fed every scored image's held outputs (no extra pass) and
            all-reduced with the sums; read its ``report()`` afterwards.
        flips: ``(False,)`` (default), ``(True,)`` or ``(False, True)``: rows without and/or
            with flip (DESIGN 1.6); both come from the same passes (each scale runs plain and
            mirrored once), flip rows count both passes' GFLOPs and seconds. Gated rows are
            unflipped.

    Raises:
        ValueError: no cascades, no labelled image, a bad cascade or method.
    """
    cascades = [tuple(sorted(float(s) for s in c)) for c in cascades]
    if not cascades:
        raise ValueError("no cascades to sweep")
    methods = tuple(methods)
    if not methods:
        raise ValueError("no merge methods to sweep")
    for method in methods:
        if method != "single":
            parse_method(method)  # raises ValueError for an unknown name
    scales = union_scales(cascades)
    acc = _Accumulator(sweep_keys(cascades, methods), scales, model.num_classes)
    flips = tuple(dict.fromkeys(bool(f) for f in flips))
    if not flips:
        raise ValueError("flips must hold False, True or both")
    flipped = _Accumulator(acc.keys, scales, model.num_classes) if True in flips else None
    taus = sorted({float(g) for g in gates if float(g) > 0})
    if taus and "hierarchical" not in methods:
        raise ValueError("gates apply to the hierarchical merge: add 'hierarchical' to methods")
    criteria = tuple(dict.fromkeys(gate_by))
    for criterion in criteria:
        is_approximate(criterion)  # raises ValueError naming the criteria
    gated = {
        (tau, criterion, c): _Accumulator(((c, "hierarchical"),), c, model.num_classes)
        for criterion in criteria
        for tau in taus
        for c in dict.fromkeys(cascades)
        if len(c) > 1
    }
    total = len(dataset) if limit is None else min(len(dataset), max(int(limit), 0))
    rank, world = 0, 1
    if shard and _is_distributed():
        import torch.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
    indices = range(rank, total, world)
    error: ValueError | None = None
    try:
        for i in tqdm(
            indices, desc="sweep", unit="img", disable=not progress or rank != 0, file=sys.stderr
        ):
            sample = dataset[i]
            before = (acc.matrices.copy(), acc.merge_seconds.copy())
            if flipped is not None:
                flip_before = (flipped.matrices.copy(), flipped.merge_seconds.copy())
            image = None
            if where is not None and sample.mask is not None:
                image = where.begin(
                    sample.mask, sample.instances, sample.object_distance, sample.name
                )
            per_scale = _sweep_one(acc, model, sample, scales, precision, gated, flipped, image)
            summary = None
            if image is not None and per_scale is not None:
                summary = image.finish(per_scale)
            if on_image is None or per_scale is None or sample.mask is None:
                continue
            done = ImageDone(
                i, sample, acc.keys, acc.matrices - before[0], acc.merge_seconds - before[1],
                dict(acc.notes), per_scale, (int(sample.mask.shape[0]), int(sample.mask.shape[1])),
                acc.num_images, total, summary,
            )  # fmt: skip
            if flipped is not None:
                done = replace(
                    done,
                    flip_matrices=flipped.matrices - flip_before[0],
                    flip_merge_seconds=flipped.merge_seconds - flip_before[1],
                )
            if on_image(done) and world == 1:
                break
    except ValueError as exc:  # every rank must learn of it, or the others wait forever
        error = exc
    if world > 1:
        _raise_if_any_rank_failed(error)
        acc.all_reduce()
        for gacc in [*gated.values(), *([flipped] if flipped is not None else [])]:
            gacc.all_reduce()
        if where is not None:
            where.all_reduce()
    if error is not None:
        raise error
    if acc.num_images == 0:
        raise ValueError(
            "no labelled image to score (every sample's mask is None, or the dataset is empty)"
        )
    table = acc.table(model.labels)
    rows = table.rows if False in flips else ()
    if flipped is not None:
        rows = (*rows, *(replace(r, flip=True) for r in flipped.table(model.labels).rows))
    extra = [
        replace(gacc.table(model.labels).rows[0], gate=tau, gate_by=criterion)
        for (tau, criterion, _), gacc in gated.items()
    ]
    return replace(table, rows=(*rows, *extra))


def subset_rows(
    result: InferenceResult,
    methods: Iterable[str] = ("hierarchical",),
    gt: np.ndarray | torch.Tensor | None = None,
    model: MultiScaleSegmenter | None = None,
) -> SweepTable:
    """Returns a :class:`SweepTable` of every non-empty subset of ``result.scales`` x method.

    Each row is re-merged from ``result``'s per-scale outputs (no forward pass). Rows are scored
    against ``gt`` (``(H, W)`` class ids, 255 ignored) when given, else against the full
    cascade's hierarchical prediction (``reference == "agreement with full cascade"``; the full
    cascade's hierarchical row then scores 1.0). GFLOPs and seconds are those of the subset's
    passes (when they were computed) plus the merge.

    Args:
        result: an :class:`~hmsa_core.InferenceResult` of one image.
        methods: merge methods; ``"single"`` expands to each scale of each subset.
        gt: ground truth of the image.
        model: the explicit-attention model, needed for ``"explicit"``.

    Raises:
        ValueError: ``gt`` of the wrong shape or with ids outside the label set.
    """
    labels = result.labels
    if gt is not None:
        target = torch.as_tensor(np.asarray(gt) if not isinstance(gt, torch.Tensor) else gt)
        if tuple(target.shape) != result.size:
            raise ValueError(
                f"ground truth is {tuple(target.shape)} but the prediction is {result.size}"
            )
        target = target.to(torch.int64).cpu()
        reference = REFERENCE_GT
    else:
        target = result.remerge("hierarchical", result.scales, model=model).pred.cpu()
        reference = REFERENCE_AGREEMENT
    subsets = all_subsets(result.scales)
    acc = _Accumulator(sweep_keys(subsets, methods), tuple(result.scales), labels.num_classes)
    for j, s in enumerate(result.scales):
        acc.scale_flops[j] = result.per_scale[s].cost.flops
        acc.scale_seconds[j] = result.per_scale[s].cost.seconds
    for index, (cascade, method) in enumerate(acc.keys):
        start = time.perf_counter()
        try:
            pred = result.remerge(method, cascade, model=model).pred
        except ValueError as exc:
            acc.failed[index] = 1
            acc.notes[index] = f"{method} on ({format_cascade(cascade, ', ')}): {exc}"
            continue
        acc.merge_seconds[index] = time.perf_counter() - start
        cm = ConfusionMatrix(labels.num_classes)
        cm.update(pred.cpu(), target)
        acc.matrices[index] = cm.matrix
    acc.num_images = 1
    return acc.table(labels, reference)


# --------------------------------------------------------------------------- command line


def parse_gates(text: str) -> tuple[float, ...]:
    """Returns the gating thresholds of ``"0,0.01,0.05"``; ``ValueError`` naming a bad one."""
    gates = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        try:
            value = float(token)
        except ValueError as exc:
            raise ValueError(f"--gates: {token!r} is not a number; write e.g. 0,0.01,0.05") from exc
        if not 0.0 <= value < 1.0:
            raise ValueError(f"--gates: {token} is outside [0, 1)")
        gates.append(value)
    return tuple(gates)


def parse_gate_by(text: str) -> tuple[str, ...]:
    """Returns the gate criteria of ``"attention,confidence"``; ``ValueError`` naming the
    known ones for a bad name."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    for name in names:
        if name not in GATE_CRITERIA:
            raise ValueError(
                f"--gate-by: {name!r} is not a gate criterion; use {', '.join(GATE_CRITERIA)}"
            )
    if not names:
        raise ValueError(f"--gate-by: give at least one of {', '.join(GATE_CRITERIA)}")
    return names


def load_sweep_model(name: str, device: str | torch.device | None) -> MultiScaleSegmenter:
    """Returns the model named ``name``: a bundled name or checkpoint path (via
    :func:`hmsa_core.load_model`), or a registry architecture with random weights (said on stderr).
    """
    from hmsa_core.models.registry import available

    if name in available() and not Path(name).exists() and name not in hmsa_core.BUNDLED_MODELS:
        print(f"note: {name!r} is an architecture name: using RANDOM weights", file=sys.stderr)
        target = hmsa_core.api.resolve_device(device)
        return hmsa_core.build(name, num_classes=19).to(target).eval()
    return hmsa_core.load_model(name, device)


def _where_accumulator(model: MultiScaleSegmenter, cascades: Sequence[Cascade]) -> WhereAccumulator:
    """Returns the where accumulator of ``--where``: default methods over the union scales."""
    from analysis.where_scales import WhereAccumulator

    return WhereAccumulator(model.labels, union_scales(cascades), model=model)


def _write_where(where: WhereAccumulator, path: str) -> None:
    """Writes the where-report and the per-image summaries of ``--where`` as JSON."""
    import json

    data = {**where.report().to_dict(), "images": [i.to_dict() for i in where.images]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"wrote the where-report to {path}")


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m analysis.sweep``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.sweep",
        description="Score every cascade x merge method over a dataset from one pass per scale.",
    )
    parser.add_argument(
        "--model",
        default="hmsa-lite",
        help="bundled name, checkpoint path, or architecture (random init)",
    )
    parser.add_argument(
        "--data",
        default="synthscapes:val:100",
        help="dataset spec (see hmsa_core.data.open_dataset)",
    )
    add_cascades_argument(parser, default=DEFAULT_CASCADES)
    parser.add_argument(
        "--all-subsets",
        action="store_true",
        help="sweep every non-empty subset of the scales in --cascades",
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help="comma-separated merge methods ('single' = each scale)",
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--out", default="sweep.csv", help="CSV output path")
    parser.add_argument("--md", default=None, help="markdown output path")
    parser.add_argument(
        "--per-class", action="store_true", help="add per-class IoU columns to the markdown"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES, help="default auto"
    )
    parser.add_argument(
        "--gates",
        default="0",
        help="comma-separated attention-gating thresholds, e.g. 0,0.01,0.05,0.1 (adds gated "
        "hierarchical rows; 0 = ungated)",
    )
    parser.add_argument(
        "--gate-by",
        default="bound",
        help="comma-separated gate criteria for the --gates rows (DESIGN 1.8): "
        f"{', '.join(GATE_CRITERIA)} (default bound; one row per criterion and gate)",
    )
    parser.add_argument(
        "--flip",
        default="0",
        choices=("0", "1", "both"),
        help="rows without flip (0, default), with flip (1: each scale also runs mirrored, "
        "DESIGN 1.6) or both from the same passes",
    )
    parser.add_argument(
        "--where",
        default=None,
        metavar="FILE",
        help="also write the where-report (size, boundary, calibration; analysis.where_scales) "
        "of the union of the cascades' scales to this JSON file",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return with_example(
        parser,
        'python -m analysis.sweep --model hmsa-lite --data synthscapes:val:8 --cascades "0.5;1;0.5,1,2" \\\n'
        "      --methods hierarchical,mean,max --out sweep.csv --md sweep.md",
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the sweep command line; returns the exit code (2 on bad input)."""
    args = build_parser().parse_args(argv)
    info = distributed.setup()  # joins the process group under torchrun
    rank, world = info.rank, info.world_size
    dist_device = info.device if info.distributed else None
    try:
        try:
            from hmsa_core.data.open import open_dataset

            cascades = parse_cascades(args.cascades)
            if args.all_subsets:
                cascades = tuple(all_subsets(union_scales(cascades)))
            methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
            if args.limit is not None and args.limit < 1:
                raise ValueError(f"--limit must be at least 1, got {args.limit}")
            model = load_sweep_model(args.model, dist_device or args.device)
            dataset = open_dataset(args.data)
            where = _where_accumulator(model, cascades) if args.where else None
            table = sweep(
                model,
                dataset,
                cascades,
                methods,
                limit=args.limit,
                precision=args.precision,
                progress=not args.no_progress,
                gates=parse_gates(args.gates),
                gate_by=parse_gate_by(args.gate_by),
                where=where,
                flips={"0": (False,), "1": (True,), "both": (False, True)}[args.flip],
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if rank == 0:
            table.to_csv(args.out)
            markdown = table.to_markdown(per_class=args.per_class)
            if args.md:
                Path(args.md).parent.mkdir(parents=True, exist_ok=True)
                Path(args.md).write_text(markdown, encoding="utf-8")
            print(markdown, end="")
            if where is not None:
                _write_where(where, args.where)
            print(
                f"wrote {args.out}"
                + (f" and {args.md}" if args.md else "")
                + f" ({world} process(es))"
            )
        return 0
    finally:
        distributed.cleanup(info)


if __name__ == "__main__":
    sys.exit(main())
