"""The per-image work of :mod:`analysis.where_scales`: inputs prepared once per image, then one
pass per method of arg-max labels and bincounts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from analysis.boundaries import (
    boundary_dilation,
    boundary_distance,
    boundary_iou_counts,
    inner_band,
    trimap_bands,
)
from analysis.calibration import ReliabilityBins, reliability_bins, top_probability
from analysis.objects import ObjectTable, find_objects
from analysis.where_report import (
    BoundaryReport,
    CalibrationReport,
    SizeReport,
    WhereReport,
)
from analysis.where_settings import WhereSettings, parse_where_method
from analysis.where_stats import BinnedStats

if TYPE_CHECKING:  # pragma: no cover - types only
    from hmsa_core.labels import LabelSet

#: Merge kinds whose weight maps say something (mean's are 1/n, a single scale's one-hot).
WEIGHT_KINDS = ("hierarchical", "max", "explicit")


def _edges_bin(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Returns ``(N,)`` bin index of values on lower ``edges`` (last open; below first: 0)."""
    idx = np.searchsorted(np.asarray(edges, np.float64), values, side="right") - 1
    return np.clip(idx, 0, len(edges) - 1)


def _distance_names(edges: Sequence[float], unit: str) -> tuple[str, ...]:
    e = list(edges)
    return (
        *tuple(f"{e[i]:g}-{e[i + 1]:g} {unit}" for i in range(len(e) - 1)),
        f">= {e[-1]:g} {unit}",
    )


@dataclass
class ImageInputs:
    """Everything about one mask that every method shares (computed once per image)."""

    size: tuple[int, int]
    num_classes: int
    class_names: tuple[str, ...]
    scales: tuple[float, ...]
    settings: WhereSettings
    mask: np.ndarray
    valid: np.ndarray  # (H*W,) bool
    gt: np.ndarray  # (n,) int64 ground truth of valid pixels
    table: ObjectTable
    obj: np.ndarray  # (n,) object row of each valid pixel
    size_bin: np.ndarray  # (N,) per object
    diam_bin: np.ndarray  # (N,)
    dist_bin: np.ndarray | None  # (N,) -1 for unknown, None without distances
    size_base: np.ndarray  # (n,) size_bin * C * C + gt * C
    band_base: np.ndarray  # (n,) band * C * C + gt * C
    wdist_bin: np.ndarray  # (n,) boundary-distance bin of the weight curve
    gt_band: np.ndarray  # (H, W) Boundary IoU inner band of the mask
    dilation: int
    notes: tuple[str, ...]
    gt_band_valid: np.ndarray | None = None  # (H, W) gt_band without ignore pixels
    gt_band_count: np.ndarray | None = None  # (C,) pixels of each class in gt_band_valid
    dist_sel: np.ndarray | None = None  # (n,) bool: valid pixels of objects at a known distance
    dist_base: np.ndarray | None = None  # (m,) distance_bin * C * C + gt * C of those pixels

    def pick(self, values: np.ndarray) -> np.ndarray:
        """Returns the labelled pixels of an ``(H, W)`` map, flat (a view when all are)."""
        flat = values.ravel()
        return flat if self.gt.size == flat.size else flat[self.valid]

    @property
    def empty(self) -> bool:
        """Returns True when no pixel is labelled (all ignore)."""
        return self.gt.size == 0

    @classmethod
    def build(
        cls,
        mask: np.ndarray,
        size: tuple[int, int],
        labels: LabelSet,
        instances: np.ndarray | None,
        distances: Mapping[int, float] | None,
        settings: WhereSettings,
        scales: tuple[float, ...],
    ) -> ImageInputs:
        """Returns the inputs of ``mask`` for an output of ``size``.

        Raises:
            ValueError: a mask of another size, or ids outside the label set.
        """
        mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
        if mask.shape != tuple(size):
            raise ValueError(
                f"mask is {mask.shape[1]} x {mask.shape[0]} but the image is {size[1]} x "
                f"{size[0]}: give the mask of this image at its resolution"
            )
        c = labels.num_classes
        table = find_objects(mask, c, instances, distances, settings.ignore_index)
        notes = list(table.notes)
        valid = (mask != settings.ignore_index).ravel()
        if not valid.any():
            notes.append("the mask is all ignore: every bin is empty")
        gt = mask.ravel()[valid].astype(np.int64)
        obj = table.index_map().ravel()[valid]
        bins = settings.size_bins
        size_bin = bins.size_bin(table.shares)
        diam_bin = bins.diameter_bin(table.diameters)
        known = np.isfinite(table.distances)
        dist_bin = None
        if known.any():
            dist_bin = np.where(known, _edges_bin(table.distances, settings.distance_edges), -1)
        # Distances are whole pixels: bin them by lookup tables on min(d, 255).
        dist = boundary_distance(mask, settings.ignore_index)
        near = np.minimum(dist, 255).astype(np.uint8).ravel()[valid]
        steps = np.arange(256, dtype=np.float64)
        band = trimap_bands(steps, settings.trimap_widths).astype(np.int64)[near]
        wdist = _edges_bin(steps, settings.weight_distance_edges)[near]
        dilation = boundary_dilation(mask.shape, settings.boundary_iou_ratio)
        gt_band = inner_band(mask, dilation) if gt.size else np.zeros(mask.shape, bool)
        gt_band_valid = gt_band & valid.reshape(mask.shape)
        gt_band_count = np.bincount(mask[gt_band_valid].astype(np.int64), minlength=c)[:c]
        dist_sel = dist_base = None
        if dist_bin is not None and gt.size:
            pix_bin = dist_bin[obj]
            dist_sel = pix_bin >= 0
            dist_base = (pix_bin[dist_sel] * c + gt[dist_sel]) * c
        return cls(
            size=(int(size[0]), int(size[1])), num_classes=c, class_names=tuple(labels.names),
            scales=scales, settings=settings, mask=mask, valid=valid, gt=gt, table=table,
            obj=obj, size_bin=size_bin, diam_bin=diam_bin, dist_bin=dist_bin,
            size_base=(size_bin[obj] * c + gt) * c if gt.size else gt,
            band_base=(band * c + gt) * c,
            wdist_bin=wdist,
            gt_band=gt_band, dilation=dilation, notes=tuple(notes), gt_band_valid=gt_band_valid,
            gt_band_count=gt_band_count, dist_sel=dist_sel, dist_base=dist_base,
        )  # fmt: skip


def _binned(names: tuple[str, ...], of_obj: np.ndarray, table: ObjectTable, keep: np.ndarray,
            methods: Sequence[str], weight_methods: Sequence[str], c: int | None,
            s: int, min_objects: int) -> BinnedStats:  # fmt: skip
    """Returns zeroed :class:`BinnedStats` with the object and pixel counts filled."""
    b = len(names)
    sel = keep & (of_obj >= 0)
    objects = np.bincount(of_obj[sel], minlength=b)[:b].astype(np.int64)
    pixels = np.bincount(of_obj[sel], weights=table.areas[sel], minlength=b)[:b].astype(np.int64)
    z = np.zeros(b, np.int64)
    return BinnedStats(
        names, objects, pixels,
        correct={m: z.copy() for m in methods}, found={m: z.copy() for m in methods},
        confusion={m: np.zeros((b, c, c), np.int64) for m in methods} if c else {},
        weights={m: np.zeros((b, s)) for m in weight_methods}, min_objects=min_objects,
    )  # fmt: skip


def empty_report(
    inputs: ImageInputs, methods: Sequence[str], settings: WhereSettings
) -> WhereReport:
    """Returns the one-image report with counts filled and every method's sums at zero."""
    c, s, t = inputs.num_classes, len(inputs.scales), inputs.table
    wm = [m for m in methods if parse_where_method(m)[0] in WEIGHT_KINDS]
    every = np.ones(len(t), bool)
    bins = settings.size_bins
    args = (methods, wm)
    size = SizeReport(
        bins.describe(),
        _binned(bins.names, inputs.size_bin, t, every, *args, c, s, settings.min_objects),
        _binned(bins.diameter_names(), inputs.diam_bin, t, every, *args, None, s, settings.min_objects),
    )  # fmt: skip
    if inputs.dist_bin is not None:
        names = _distance_names(settings.distance_edges, "m")
        size.by_distance = _binned(
            names, inputs.dist_bin, t, inputs.dist_bin >= 0, *args, c, s, settings.min_objects
        )
    nw, nd = len(settings.trimap_widths), len(settings.weight_distance_edges)
    boundary = BoundaryReport(
        widths=tuple(settings.trimap_widths),
        band_confusion={m: np.zeros((nw + 1, c, c), np.int64) for m in methods},
        biou_intersection={m: np.zeros(c, np.int64) for m in methods},
        biou_union={m: np.zeros(c, np.int64) for m in methods},
        ratio=settings.boundary_iou_ratio,
        distance_edges=tuple(float(e) for e in settings.weight_distance_edges),
        distance_pixels=np.bincount(inputs.wdist_bin, minlength=nd)[:nd].astype(np.int64),
        distance_weights={m: np.zeros((nd, s)) for m in wm},
    )
    calibration = CalibrationReport(
        {m: ReliabilityBins.empty(settings.calibration_bins) for m in methods}
    )
    return WhereReport(
        inputs.scales, tuple(methods), inputs.class_names, t.source, 1, size, boundary,
        calibration, inputs.notes,
    )  # fmt: skip


def _merge(method: str, inputs: ImageInputs, per_scale: Mapping[float, object], model: object):
    """Returns the :class:`~hmsa_core.merge.MergeResult` of ``method`` (batch 1)."""
    from hmsa_core.merge import merge

    kind, cascade = parse_where_method(method)
    chosen = cascade or inputs.scales
    return merge({s: per_scale[s] for s in chosen}, kind, output_size=inputs.size, model=model)


def score_method(
    report: WhereReport,
    inputs: ImageInputs,
    method: str,
    per_scale: Mapping[float, object],
    model: object | None,
    merger: Callable[[str], object] | None = None,
) -> None:
    """Merges ``method`` (unless ``merged`` is given) and adds its counts into ``report``; a
    method that cannot merge (e.g. hierarchical without attention) is noted and left empty."""
    try:
        merged = merger(method) if merger else _merge(method, inputs, per_scale, model)
    except ValueError as exc:
        report.notes = (*report.notes, f"{method} left out: {exc}")
        drop_method(report, method)
        return
    pred_t, prob_t = top_probability(merged.logits[0], inputs.settings.calibration_stride)
    score_maps(report, inputs, method, pred_t.numpy(), prob_t.numpy(), merged.weights)


def score_maps(
    report: WhereReport,
    inputs: ImageInputs,
    method: str,
    pred: np.ndarray,
    top_prob: np.ndarray,
    weights: Mapping[float, torch.Tensor],
) -> None:
    """Adds one method's counts into ``report`` from its ``(H, W)`` arg-max labels ``pred``,
    its strided top probability ``(ceil(H / k), ceil(W / k))`` (``k`` =
    ``settings.calibration_stride``) and its per-scale ``(1, H, W)`` weights (used for the
    weight kinds only)."""
    stride = inputs.settings.calibration_stride
    c = inputs.num_classes
    pv = inputs.pick(pred).astype(np.int64, copy=False)
    ok = pv == inputs.gt
    _score_objects(report, inputs, method, pv, ok)
    bnd = report.boundary
    nb = len(bnd.widths) + 1
    bnd.band_confusion[method] += np.bincount(inputs.band_base + pv, minlength=nb * c * c).reshape(
        nb, c, c
    )
    inter, union = _boundary_counts(inputs, pred)
    bnd.biou_intersection[method] += inter
    bnd.biou_union[method] += union
    sub = inputs.mask[::stride, ::stride]
    keep = sub != inputs.settings.ignore_index
    right = pred[::stride, ::stride][keep] == sub[keep]
    hist = reliability_bins(top_prob[keep], right, inputs.settings.calibration_bins)
    report.calibration.bins[method].add(hist)
    if method in bnd.distance_weights:
        _score_weights(report, inputs, method, weights)


def _boundary_counts(inputs: ImageInputs, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(intersection (C,), union (C,))`` of Boundary IoU, as
    :func:`analysis.boundaries.boundary_iou_counts` counts them, with the mask's side taken
    once per image."""
    if inputs.gt_band_valid is None or inputs.gt_band_count is None:
        return boundary_iou_counts(
            pred, inputs.mask, inputs.num_classes, inputs.gt_band, inputs.dilation,
            inputs.settings.ignore_index,
        )  # fmt: skip
    c = inputs.num_classes
    p_band = inner_band(pred, inputs.dilation)
    p_band &= inputs.valid.reshape(p_band.shape)
    p_cnt = np.bincount(pred[p_band].astype(np.int64), minlength=c)[:c]
    both = inputs.gt_band_valid & p_band
    both &= pred == inputs.mask
    inter = np.bincount(inputs.mask[both].astype(np.int64), minlength=c)[:c]
    return inter, inputs.gt_band_count + p_cnt - inter


def drop_method(report: WhereReport, method: str) -> None:
    """Removes ``method`` and every sum of it from ``report`` (it could not merge)."""
    report.methods = tuple(m for m in report.methods if m != method)
    size, b = report.size, report.boundary
    for stats in (size.by_size, size.by_diameter, size.by_distance):
        if stats is not None:
            for d in (stats.correct, stats.found, stats.confusion, stats.weights):
                d.pop(method, None)
    for d in (b.band_confusion, b.biou_intersection, b.biou_union, b.distance_weights):
        d.pop(method, None)
    report.calibration.bins.pop(method, None)


def _group(of_obj: np.ndarray, per_obj: np.ndarray, b: int, keep: np.ndarray | None = None):
    """Returns ``(B, ...)`` sums of per-object values ``(N, ...)`` over each bin."""
    sel = of_obj >= 0 if keep is None else keep
    out = np.zeros((b, *per_obj.shape[1:]), dtype=per_obj.dtype)
    np.add.at(out, of_obj[sel], per_obj[sel])
    return out


def _score_objects(
    report: WhereReport, inputs: ImageInputs, method: str, pv: np.ndarray, ok: np.ndarray
) -> None:
    """Adds per-bin correct pixels, found objects and (size, distance) confusions."""
    t, c = inputs.table, inputs.num_classes
    n = len(t)
    correct = np.bincount(inputs.obj[ok], minlength=n)[:n].astype(np.int64)
    found = (2 * correct >= t.areas).astype(np.int64)
    size = report.size
    groups = [(size.by_size, inputs.size_bin), (size.by_diameter, inputs.diam_bin)]
    if size.by_distance is not None and inputs.dist_bin is not None:
        groups.append((size.by_distance, inputs.dist_bin))
    for stats, of_obj in groups:
        b = len(stats.names)
        stats.correct[method] += _group(of_obj, correct, b)
        stats.found[method] += _group(of_obj, found, b)
    cm = np.bincount(inputs.size_base + pv, minlength=3 * c * c).reshape(3, c, c)
    size.by_size.confusion[method] += cm
    if size.by_distance is not None and inputs.dist_bin is not None:
        b = len(size.by_distance.names)
        if inputs.dist_sel is not None and inputs.dist_base is not None:
            idx = inputs.dist_base + pv[inputs.dist_sel]
        else:
            pix_bin = inputs.dist_bin[inputs.obj]
            sel = pix_bin >= 0
            idx = (pix_bin[sel] * c + inputs.gt[sel]) * c + pv[sel]
        size.by_distance.confusion[method] += np.bincount(idx, minlength=b * c * c).reshape(b, c, c)


def _score_weights(
    report: WhereReport, inputs: ImageInputs, method: str, weights: Mapping[float, torch.Tensor]
) -> None:
    """Adds each scale's effective-weight sums per object bin and per boundary-distance bin."""
    n = len(inputs.table)
    nd = len(inputs.settings.weight_distance_edges)
    per_obj = np.zeros((n, len(inputs.scales)))
    per_dist = np.zeros((nd, len(inputs.scales)))
    cell = inputs.obj * nd + inputs.wdist_bin  # one bincount gives both groupings
    for j, s in enumerate(inputs.scales):
        if s not in weights:
            continue
        w = inputs.pick(weights[s][0].detach().float().cpu().numpy())
        table = np.bincount(cell, weights=w, minlength=n * nd)[: n * nd].reshape(n, nd)
        per_obj[:, j] = table.sum(1)
        per_dist[:, j] = table.sum(0)
    size = report.size
    stats = [(size.by_size, inputs.size_bin), (size.by_diameter, inputs.diam_bin)]
    if size.by_distance is not None and inputs.dist_bin is not None:
        stats.append((size.by_distance, inputs.dist_bin))
    for binned, of_obj in stats:
        binned.weights[method] += _group(of_obj, per_obj, len(binned.names))
    report.boundary.distance_weights[method] += per_dist
