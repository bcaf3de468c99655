"""Where each scale wins: by object size, near boundaries, and in confidence (DESIGN 1.7).

:func:`analyse_where` scores one result against its mask for every merge method and single
scale, all re-merged from the held per-scale outputs (never a forward pass);
:class:`WhereAccumulator` streams the same over a dataset with constant memory (confusion
matrices, histograms and counts only) and reduces over ``torchrun`` ranks.

Speed: mean, max and single scales are merged in row bands that share each scale's resize
(:mod:`analysis.where_bands`: only their labels, their strided top probability and max's
winning scale are kept; the result's own method uses its own logits), and every table is one
``np.bincount`` over pixels (objects x classes, bands x classes x classes), never a loop over
classes on full images. ``fast=False`` re-merges every method in full (the same numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from analysis.boundaries import boundary_dilation
from analysis.where_bands import MethodMaps, band_maps, bandable
from analysis.where_compute import ImageInputs, empty_report, score_maps, score_method
from analysis.where_image import ImageWhere, WhereImage, image_summary
from analysis.where_report import (
    BoundaryReport,
    CalibrationReport,
    SizeReport,
    WhereReport,
)
from analysis.where_settings import (
    DEFAULT_SETTINGS,
    WhereSettings,
    default_methods,
    parse_where_method,
)

if TYPE_CHECKING:  # pragma: no cover - types only
    from hmsa_core.inference import InferenceResult
    from hmsa_core.labels import LabelSet
    from hmsa_core.merge import MergeResult

__all__ = [
    "BoundaryReport",
    "CalibrationReport",
    "ImageWhere",
    "SizeReport",
    "WhereAccumulator",
    "WhereImage",
    "WhereReport",
    "WhereSettings",
    "analyse_merge",
    "analyse_outputs",
    "analyse_where",
    "default_methods",
    "parse_where_method",
]


def analyse_outputs(
    per_scale: Mapping[float, object],
    size: tuple[int, int],
    mask: np.ndarray,
    labels: LabelSet,
    *,
    instances: np.ndarray | None = None,
    distances: Mapping[int, float] | None = None,
    settings: WhereSettings = DEFAULT_SETTINGS,
    methods: Sequence[str] | None = None,
    model: object | None = None,
    merger: Callable[[str], object] | None = None,
    fast: bool = True,
) -> WhereReport:
    """Returns the :class:`WhereReport` of per-scale outputs (as :func:`hmsa_core.merge` takes
    them, batch 1) against a ``(H, W)`` mask. ``merger(method)`` may supply each method's
    :class:`~hmsa_core.merge.MergeResult` (default: :func:`hmsa_core.merge` of ``per_scale``);
    merges are made one method at a time, so one merged map is held at once. With ``fast``
    (and no ``merger``), mean, max and single scales are merged in row bands instead
    (:func:`analysis.where_bands.band_maps`: the same numbers, no full-size merge).

    Raises:
        ValueError: a mask of another size, ids outside the label set, an unknown method or a
            scale not computed.
    """
    outputs = _band_outputs(per_scale) if fast and merger is None else None
    return _analyse(
        per_scale, size, mask, labels, instances, distances, settings, methods, model, merger,
        outputs, None,
    )  # fmt: skip


def _band_outputs(per_scale: Mapping[float, object]) -> dict[float, torch.Tensor] | None:
    """Returns scale -> ``(C, h, w)`` logits when every output is batch-1 float32 on the CPU
    with one class count (what :func:`band_maps` takes), else ``None`` (merge in full)."""
    out = {}
    for s, item in per_scale.items():
        logits = getattr(getattr(item, "output", item), "logits", None)
        if (
            not isinstance(logits, torch.Tensor)
            or logits.dim() != 4
            or logits.shape[0] != 1
            or logits.dtype != torch.float32
            or logits.device.type != "cpu"
        ):
            return None
        out[float(s)] = logits[0]
    if len({int(x.shape[0]) for x in out.values()}) != 1:
        return None
    return out


def _analyse(
    per_scale: Mapping[float, object],
    size: tuple[int, int],
    mask: np.ndarray,
    labels: LabelSet,
    instances: np.ndarray | None,
    distances: Mapping[int, float] | None,
    settings: WhereSettings,
    methods: Sequence[str] | None,
    model: object | None,
    merger: Callable[[str], object] | None,
    outputs: Mapping[float, torch.Tensor] | None,
    own: tuple[str, tuple[float, ...], torch.Tensor, Mapping[float, torch.Tensor], torch.Tensor]
    | None,
) -> WhereReport:
    """Returns the report of :func:`analyse_outputs`; the methods that ``outputs`` (scale ->
    ``(C, h, w)`` logits) can band, and ``own`` (``(method, cascade, (C, H, W) logits,
    scale -> (H, W) weights, (H, W) arg-max)`` of a merge already made), are taken by
    :func:`band_maps`."""
    scales = tuple(sorted(float(s) for s in per_scale))
    methods = tuple(methods) if methods else default_methods(scales)
    for m in methods:
        _, cascade = parse_where_method(m)
        missing = [s for s in cascade or () if s not in scales]
        if missing:
            raise ValueError(
                f"method {m!r} needs scales {', '.join(f'{s:g}' for s in missing)} that were "
                "not computed; add them to --scales"
            )
    inputs = ImageInputs.build(
        mask, size, labels, instances, distances, settings, scales
    )  # raises ValueError on bad input
    report = empty_report(inputs, methods, settings)
    if inputs.empty:
        return report
    maps = _fast_maps(inputs, methods, outputs, own)
    for m in methods:
        if m in maps:
            got = maps.pop(m)  # scored and dropped one by one
            score_maps(report, inputs, m, got.pred, got.top_prob, got.weights)
        else:
            score_method(report, inputs, m, per_scale, model, merger)
    return report


def _fast_maps(
    inputs: ImageInputs,
    methods: Sequence[str],
    outputs: Mapping[float, torch.Tensor] | None,
    own: tuple[str, tuple[float, ...], torch.Tensor, Mapping[float, torch.Tensor], torch.Tensor]
    | None,
) -> dict[str, MethodMaps]:
    """Returns the :class:`MethodMaps` of every method the bands can take (see :func:`_analyse`)."""
    chosen: dict[str, tuple[str, tuple[float, ...]]] = {}
    for m in methods:
        kind, cascade = parse_where_method(m)
        cascade = tuple(cascade or inputs.scales)
        if own is not None and (kind, cascade) == own[:2]:
            chosen[m] = ("own", cascade)
        elif outputs is not None and bandable(kind, cascade, outputs):
            chosen[m] = (kind, cascade)
    if not chosen:
        return {}
    maps = band_maps(
        outputs or {}, chosen, inputs.size, inputs.settings.calibration_stride,
        own=None if own is None else own[2], own_pred=None if own is None else own[4],
    )  # fmt: skip
    if own is not None:
        for m, (kind, _) in chosen.items():
            if kind == "own":
                maps[m].weights = {s: w[None] for s, w in own[3].items()}
    return maps


def analyse_where(
    result: InferenceResult,
    mask: np.ndarray,
    *,
    instances: np.ndarray | None = None,
    distances: Mapping[int, float] | None = None,
    settings: WhereSettings = DEFAULT_SETTINGS,
    methods: Sequence[str] | None = None,
    model: object | None = None,
    fast: bool = True,
) -> WhereReport:
    """Returns the :class:`WhereReport` of one result against its ``(H, W)`` mask.

    Args:
        result: an inference result: each method is merged from its held per-scale outputs
            (:func:`hmsa_core.merge`; ``result.remerge`` when it holds flipped passes, so the
            flips count; never a forward pass); its own method and cascade use its own logits.
        mask: ``(H, W)`` class ids, ``settings.ignore_index`` ignored.
        instances: optional ``(H, W)`` instance ids (0 = none); else connected components.
        distances: optional instance id -> camera distance (metres).
        settings: bins and widths (:class:`WhereSettings`).
        methods: methods to score (default :func:`default_methods`); ``"mean@0.5,1"`` scores a
            method on a sub-cascade.
        model: the explicit-attention model, only for ``"explicit"``.
        fast: take the result's own method from its own logits, and merge mean, max and
            single scales (without flips) in row bands (:mod:`analysis.where_bands`), never at
            full size; ``False`` re-merges every method in full (the reference path: the
            same numbers, several times slower).

    Raises:
        ValueError: a mask of another size than the result, ids outside the label set.
    """
    from hmsa_core.merge import MergeResult, merge

    per_scale = {s: r.output for s, r in result.per_scale.items()}
    flipped = bool(getattr(result, "flip", False))

    def merger(method: str) -> MergeResult:
        kind, cascade = parse_where_method(method)
        chosen = tuple(cascade or result.scales)
        if not flipped and not (kind == result.method and chosen == tuple(result.scales)):
            # the merge alone: remerge would also build a whole result (arg-max, costs)
            subset = {s: per_scale[s] for s in chosen}
            return merge(subset, kind, output_size=result.size, model=model)
        same = kind == result.method and chosen == tuple(result.scales)
        merged = result if same else result.remerge(kind, chosen, model=model)  # type: ignore[arg-type]
        weights = {s: w[None] for s, w in merged.weights.items()}
        return MergeResult(method, merged.scales, merged.logits[None], weights)

    outputs = own = None
    if fast:
        outputs = None if flipped else _band_outputs(per_scale)
        logits = result.logits
        if logits.dtype == torch.float32 and logits.device.type == "cpu":
            own = (result.method, tuple(result.scales), logits, result.weights, result.pred)
    return _analyse(
        per_scale, result.size, mask, result.labels, instances, distances, settings, methods,
        model, merger, outputs, own,
    )  # fmt: skip


def analyse_merge(
    merged: MergeResult,
    mask: np.ndarray,
    labels: LabelSet,
    *,
    instances: np.ndarray | None = None,
    distances: Mapping[int, float] | None = None,
    settings: WhereSettings = DEFAULT_SETTINGS,
) -> WhereReport:
    """Returns the :class:`WhereReport` of one :class:`~hmsa_core.merge.MergeResult` (batch 1)
    alone: its own method only, as it holds no per-scale outputs to re-merge.

    Raises:
        ValueError: a mask of another size than the merge, ids outside the label set.
    """
    size = (int(merged.logits.shape[-2]), int(merged.logits.shape[-1]))
    return analyse_outputs(
        dict.fromkeys(merged.scales), size, mask, labels, instances=instances,
        distances=distances, settings=settings, methods=(merged.method,),
        merger=lambda _: merged,
    )  # fmt: skip


class WhereAccumulator:
    """Streams the where-analysis over images: one report of sums (constant memory) plus a
    few numbers per image (:class:`ImageWhere`).

    Args:
        labels: the label set.
        scales: the cascade every image is run with.
        methods: methods to score (default :func:`default_methods`).
        settings: :class:`WhereSettings`.
        model: the explicit-attention model, only for ``"explicit"``.
    """

    def __init__(
        self,
        labels: LabelSet,
        scales: Sequence[float],
        methods: Sequence[str] | None = None,
        settings: WhereSettings = DEFAULT_SETTINGS,
        model: object | None = None,
    ) -> None:
        self.labels = labels
        self.scales = tuple(sorted(float(s) for s in scales))
        self.methods = tuple(methods) if methods else default_methods(self.scales)
        self.settings = settings
        self.model = model
        self.images: list[ImageWhere] = []
        self._report: WhereReport | None = None

    def resume(self, report: WhereReport | None, images: Sequence[ImageWhere]) -> None:
        """Starts from stored sums and summaries (a resumed dataset run).

        Raises:
            ValueError: a report of other scales, methods or classes.
        """
        if report is not None and (report.scales, report.methods, report.class_names) != (
            self.scales,
            self.methods,
            tuple(self.labels.names),
        ):
            raise ValueError("the stored where-report has other scales, methods or classes")
        self._report = report
        self.images = list(images)

    def _take(self, report: WhereReport, name: str) -> ImageWhere:
        summary = image_summary(report, name)
        if self._report is None:
            self._report = report
        else:
            self._report.add(report)
        self.images.append(summary)
        return summary

    def add(
        self,
        result: InferenceResult,
        mask: np.ndarray,
        instances: np.ndarray | None = None,
        distances: Mapping[int, float] | None = None,
        name: str = "",
    ) -> ImageWhere:
        """Adds one result and returns its :class:`ImageWhere` summary."""
        report = analyse_where(
            result, mask, instances=instances, distances=distances, settings=self.settings,
            methods=self.methods, model=self.model,
        )  # fmt: skip
        return self._take(report, name or str(len(self.images)))

    def begin(
        self,
        mask: np.ndarray,
        instances: np.ndarray | None = None,
        distances: Mapping[int, float] | None = None,
        name: str = "",
    ) -> WhereImage:
        """Returns a :class:`WhereImage` for one image whose merges someone else makes (the
        sweep hands over each merge it scores, so no merge is made twice).

        Raises:
            ValueError: a mask with ids outside the label set.
        """
        return WhereImage(self, mask, instances, distances, name or str(len(self.images)))

    def add_outputs(
        self,
        per_scale: Mapping[float, object],
        size: tuple[int, int],
        mask: np.ndarray,
        instances: np.ndarray | None = None,
        distances: Mapping[int, float] | None = None,
        name: str = "",
    ) -> ImageWhere:
        """Adds one image's per-scale outputs (as the sweep holds them); returns its summary."""
        report = analyse_outputs(
            {s: per_scale[s] for s in self.scales}, size, mask, self.labels,
            instances=instances, distances=distances, settings=self.settings,
            methods=self.methods, model=self.model,
        )  # fmt: skip
        return self._take(report, name or str(len(self.images)))

    def merge(self, other: WhereAccumulator) -> None:
        """Adds ``other``'s sums and image summaries into this accumulator."""
        if other._report is not None:
            if self._report is None:
                self._report = WhereReport.from_dict(other._report.to_dict())
            else:
                self._report.add(other._report)
        self.images.extend(other.images)

    def all_reduce(self) -> None:
        """Combines every rank's sums and summaries (in rank order) on every rank of the
        default ``torch.distributed`` process group."""
        import torch.distributed as dist

        mine = (None if self._report is None else self._report.to_dict(), self.images)
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, mine)
        self._report, self.images = None, []
        for report, images in parts:
            if report is not None:
                part = WhereAccumulator(self.labels, self.scales, self.methods, self.settings)
                part._report = WhereReport.from_dict(report)
                self.merge(part)
            self.images.extend(images)

    def report(self) -> WhereReport:
        """Returns the dataset's :class:`WhereReport` (an explicit empty one before any image)."""
        if self._report is not None:
            return self._report
        size = (1, 1)
        inputs = ImageInputs.build(
            np.full(size, self.settings.ignore_index), size, self.labels, None, None,
            self.settings, self.scales,
        )  # fmt: skip
        report = empty_report(inputs, self.methods, self.settings)
        report.num_images = 0
        report.notes = ("no image analysed yet",)
        return report


def boundary_width(size: tuple[int, int], settings: WhereSettings = DEFAULT_SETTINGS) -> int:
    """Returns the Boundary IoU band width (pixels) used for an image of ``size``."""
    return boundary_dilation(size, settings.boundary_iou_ratio)
