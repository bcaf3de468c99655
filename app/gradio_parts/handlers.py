"""The Gradio event handlers: read inputs, call :mod:`hmsa_core` and :mod:`analysis`, shape outputs.

Every user mistake surfaces as ``gr.Error`` carrying the ``ValueError`` message of the layer
that caught it, so the page shows what to fix and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from gradio.processing_utils import save_bytes_to_cache
from gradio.utils import get_upload_folder

import hmsa_core
from analysis.compare import MethodComparison, compare_methods
from analysis.exports import (
    arrays_npz_bytes,
    cost_rows,
    iou_table,
    mask_png_bytes,
    metrics_json,
)
from analysis.figures import cost_figure, iou_bars_figure, method_comparison_figure
from analysis.metrics import score_prediction
from analysis.skipped_tiles import skipped_panels
from analysis.where_views import confidence_image
from app import common
from app.gradio_parts import zerogpu
from app.gradio_parts.held_result import HeldResult
from app.gradio_parts.views import (
    annotated_value,
    class_areas,
    class_choices,
    color_map,
    mask_rgb,
    scale_gallery,
    slider_value,
)
from hmsa_core.confidence import result_confidence
from hmsa_core.discovery import ModelEntry
from hmsa_core.images import load_mask
from hmsa_core.inference import InferenceResult, ProgressFn
from hmsa_core.labels import CITYSCAPES, LabelSet, label_set_for
from hmsa_core.limits import InputLimits, limits_from_env
from hmsa_core.models import MultiScaleSegmenter

#: Methods the comparison tab merges ("single" expands to every scale of the cascade).
COMPARED_METHODS: tuple[str, ...] = ("hierarchical", "mean", "max", "single", "explicit")
#: Longer side (pixels) of the upload previews.
PREVIEW_SIDE = 512
#: The outputs of :meth:`Handlers.analyse`, in order: the page lists its output components
#: the same way (see :mod:`app.gradio_parts.layout`).
ANALYSIS_OUTPUTS: tuple[str, ...] = (
    "overlay",
    "gallery",
    "summary",
    "comparison_plot",
    "iou_table",
    "iou_plot",
    "cost_table",
    "cost_plot",
    "downloads",
    "slider",
    "class_toggles",
    "held",
    "confidence",
)
#: The :class:`PageRequest` fields the expected-cost line reads.
ESTIMATE_FIELDS: tuple[str, ...] = (
    "image",
    "scales",
    "extra_scales",
    "model_name",
    "max_side",
    "precision",
    "flip",
)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raises ``ValueError`` (bad input) and ``MemoryError`` as ``gr.Error`` with a message the
    page shows; the request fails, the app keeps serving."""
    try:
        yield
    except ValueError as exc:
        raise gr.Error(str(exc) or "invalid input", print_exception=False) from exc
    except MemoryError as exc:
        raise gr.Error(
            "not enough memory for this image and cascade; lower the maximum side or drop the "
            "largest scale",
            print_exception=False,
        ) from exc


def scale_progress(
    progress: Callable[..., object], passes: Sequence[tuple[float, float]]
) -> ProgressFn:
    """Returns an :func:`hmsa_core.infer` progress callback that moves ``progress`` (a Gradio
    tracker) by each pass's share of the run's estimated FLOPs (``passes``: ``(scale, GFLOPs)``
    of every planned pass, :func:`app.common.planned_passes`), so a 2.0 pass moves it 16 times
    as far as a 0.5 one."""
    done: list[float] = []

    def report(scale: float, index: int, total: int, cached: bool) -> None:
        source = "from cache" if cached else "computed"
        done.append(scale)
        desc = f"scale {scale:g} {source} (pass {index + 1}/{total})"
        progress(common.flop_fraction(passes, done), desc=desc)

    return report


def download_progress(progress: gr.Progress, name: str) -> common.ProgressCallback:
    """Returns a download callback ``(done_bytes, total_bytes or None)`` that moves ``progress``."""

    def report(done: int, total: int | None) -> None:
        size = f"{done / 1e6:.0f} of {total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        fraction = done / total if total else (done // 10**6, None)
        progress(fraction, desc=f"downloading {name}: {size}", unit="MB")

    return report


def coerce_scales(value: object) -> tuple[float, ...] | str:
    """Returns the API's ``scales`` argument (list of numbers, one number, or comma text) as a
    tuple of floats or the text itself (parsed by :func:`app.common.build_cascade`).

    Raises:
        ValueError: anything else, or a list holding something that is not a number.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError("scales must be a list of numbers or text like '0.5, 1, 2'")
    if isinstance(value, (int, float)):
        return (float(value),)
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float, str)):
                raise ValueError(f"scale {item!r} is not a number")
            try:
                out.append(float(item))
            except ValueError as exc:
                raise ValueError(f"scale {item!r} is not a number") from exc
        return tuple(out)
    raise ValueError(f"scales must be a list of numbers or comma text, got {type(value).__name__}")


def file_path(value: object) -> str | None:
    """Returns the server path of an uploaded file value (a path string or a dict with ``path``),
    or ``None`` when nothing was given."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        value = value.get("path")
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise ValueError(f"expected an uploaded file, got {type(value).__name__}")


def read_upload(value: object, read: Callable[[str], np.ndarray]) -> np.ndarray | None:
    """Returns ``read(path)`` of an uploaded file value (see :func:`file_path`), or ``None``
    without a file.

    Raises:
        gr.Error: ``read`` refused the file (``ValueError``), with its message.
    """
    with user_errors():
        path = file_path(value)
        return None if path is None else read(path)


def cached_file(data: bytes, name: str) -> str:
    """Returns the path of ``data`` written into Gradio's upload cache (content-addressed, cleaned
    by the app's ``delete_cache`` policy)."""
    return save_bytes_to_cache(data, name, cache_dir=get_upload_folder())


def load_sized(path: str, max_side: float | None, limits: InputLimits) -> common.LoadedImage:
    """Returns the image at ``path`` shrunk so its longer side is at most ``max_side`` pixels
    (``0``/``None``: unchanged), read by :func:`app.common.load_image`."""
    return common.load_image(path, int(max_side) if max_side else None, limits)


def request_cascade(
    request: PageRequest,
    size: tuple[int, int],
    model: MultiScaleSegmenter,
    limits: InputLimits,
) -> tuple[float, ...]:
    """Returns the checked cascade of ``request`` (ticked scales, or their comma text, plus
    the extra scales) for an image of ``size`` = ``(H, W)``.

    Raises:
        ValueError: a scale that is not a number or is out of ``limits``.
    """
    toggled, extra = coerce_scales(request.scales), request.extra_scales or ""
    if isinstance(toggled, str):
        toggled, extra = (), f"{toggled} {extra}"
    return tuple(common.build_cascade(toggled, extra, size, model.min_input_side, limits))


def _confidence_means(result: InferenceResult) -> dict[str, float | None]:
    """Returns the means of the merged result's confidence maps (:mod:`hmsa_core.confidence`):
    ``mean_top_prob``, ``mean_margin`` and ``mean_entropy`` (nats)."""
    maps = result_confidence(result).as_dict()
    return {f"mean_{name}": _finite(float(values.mean())) for name, values in maps.items()}


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class PageRequest:
    """One request from the page: the values of its input controls.

    The fields, in order, are the positional parameters of the page's handlers (``/analyse``,
    ``/arrays``) as :func:`page_handler` exposes them; a field added at the end with a default
    keeps older clients working.

    Attributes:
        image: the uploaded image file (path or Gradio file dict), or ``None``.
        mask: the uploaded class-id mask file, or ``None``.
        scales: the ticked scales (list of numbers) or comma text such as ``"0.5, 1, 2"``.
        extra_scales: comma text of further scales (``"0.33, 3"``).
        method: merge method; empty for the model's own.
        model_name: model name as listed in the menu; empty for the first.
        max_side: the image is shrunk to at most this longer side (pixels; 0/None: unchanged).
        precision: ``"auto"`` or ``"fp32"``.
        gate: attention gate threshold (0: exact).
        flip: also run every scale on the mirrored image and average (flip testing).
        gate_by: the gate criterion (DESIGN 1.8): ``"bound"`` (default), ``"attention"`` or
            ``"confidence"``.
    """

    image: object = None
    mask: object = None
    scales: object = common.DEFAULT_CASCADE
    extra_scales: str = ""
    method: str | None = None
    model_name: str | None = None
    max_side: float | None = None
    precision: str = "auto"
    gate: float = 0.0
    flip: bool = False
    gate_by: str = "bound"

    def options(self, limits: InputLimits) -> hmsa_core.InferOptions:
        """Returns the :class:`hmsa_core.InferOptions` of this request under ``limits``."""
        return hmsa_core.InferOptions(
            precision=self.precision or "auto",
            gate=float(self.gate or 0.0),
            gate_by=self.gate_by or "bound",
            flip=bool(self.flip),
            limits=limits,
        )


#: The :class:`PageRequest` fields in order: the page's input components are listed the same way.
PAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PageRequest))


def page_handler(
    method: Callable[..., Any],
    names: Sequence[str] = PAGE_FIELDS,
    *,
    progress: bool = True,
) -> Callable[..., Any]:
    """Returns ``method`` (called as ``method(PageRequest, progress)``, or ``method(PageRequest)``
    with ``progress=False``) as a Gradio event function taking the request fields ``names``
    positionally (the inputs of the event, in that order; missing ones keep their defaults),
    then Gradio's progress tracker. Its signature is built from :class:`PageRequest`, so the
    fields are declared once."""
    defaults = {f.name: f.default for f in fields(PageRequest)}
    unknown = [n for n in names if n not in defaults]
    if unknown:
        raise ValueError(f"not PageRequest fields: {unknown}; use some of {PAGE_FIELDS}")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind, default=defaults[n]) for n in names]
    if progress:
        params.append(inspect.Parameter("progress", kind, default=gr.Progress()))
    signature = inspect.Signature(params)

    def handler(*args: object, **kwargs: object) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        tracker = values.pop("progress", None)
        request = PageRequest(**values)  # type: ignore[arg-type]
        return method(request, tracker) if progress else method(request)

    handler.__signature__ = signature  # type: ignore[attr-defined]
    handler.__name__ = getattr(method, "__name__", "handler")
    handler.__doc__ = method.__doc__
    return handler


def _no_progress(*_args: object, **_kwargs: object) -> None:
    """A progress tracker that shows nothing (handlers called outside a Gradio event)."""


@dataclass
class Run:
    """One request's inputs and results.

    Attributes:
        entry: the chosen model's entry.
        model: the loaded model.
        loaded: the image as given to the model (after fitting the maximum side).
        result: the inference result with the chosen merge method.
        gt: ``(H, W)`` int64 ground truth, or ``None`` without a mask.
        image_name: the uploaded file's stem (for download names).
    """

    entry: ModelEntry
    model: MultiScaleSegmenter
    loaded: common.LoadedImage
    result: InferenceResult
    gt: np.ndarray | None
    image_name: str


class Handlers:
    """The app's event handlers, bound to one models folder."""

    def __init__(self, models_dir: str | os.PathLike | None = None) -> None:
        self.models_dir = models_dir

    # ------------------------------------------------------------------ models

    def entries(self) -> list[ModelEntry]:
        """Returns the selectable models (see :func:`app.common.list_models`)."""
        return common.list_models(self.models_dir)

    def model_names(self) -> list[str]:
        """Returns the names of the selectable models, the default first."""
        return [e.name for e in self.entries()]

    def model_choices(self) -> list[tuple[str, str]]:
        """Returns ``(label, name)`` of the selectable models for the menu: a pretrained entry's
        label says what its download costs (see :attr:`ModelEntry.summary`)."""
        return [(e.summary or e.name, e.name) for e in self.entries()]

    def entry(self, name: str | None) -> ModelEntry:
        """Returns the entry called ``name`` (empty: the first, the bundled default).

        Raises:
            ValueError: no such model, or no model at all.
        """
        entries = self.entries()
        if not entries:
            raise ValueError("no model is available; put a checkpoint in HMSA_MODELS_DIR")
        if not name:
            return entries[0]
        return common.find_model(name, entries)

    def weights_key(self, name: object) -> str:
        """Returns a string that changes when the weights behind the model called ``name``
        change (:func:`app.common.model_key`); ``""`` for a name that is not listed."""
        try:
            return common.model_key(self.entry(name if isinstance(name, str) else None))
        except ValueError:
            return ""

    def describe(self, name: str | None) -> str:
        """Returns the Markdown description of a model: what it is and what it was trained on."""
        try:
            entry = self.entry(name)
        except ValueError as exc:
            return f"**{exc}**"
        note = common.training_note(entry)
        warn = "⚠️ " if entry.error else ""
        return f"{warn}`{entry.name}`: {common.describe_model(entry)}. {note}"

    def model_changed(
        self,
        name: str | None,
        scales: Sequence[float],
        method: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008  (gradio's progress idiom)
    ) -> tuple:
        """Returns ``(method dropdown update, model description)`` after the model or cascade changed.

        The dropdown lists the merges this model can do on the cascade, keeping ``method`` when
        still possible, else the model's own merge. A pretrained model not downloaded yet is
        downloaded here, reporting through ``progress``; a failure is shown in the description.
        """
        description = self.describe(name)
        try:
            entry = self.entry(name)
            model = common.get_model(entry, progress=download_progress(progress, entry.name))
        except ValueError as exc:
            return gr.Dropdown(), f"{description}\n\n**{exc}**"
        options = common.method_options(model, [float(s) for s in scales or ()])
        value = method if method in options else options[0]
        return gr.Dropdown(choices=options, value=value), description

    def label_set(self, name: str | None) -> LabelSet:
        """Returns the label set of the model called ``name`` as discovery describes it (no
        weights are loaded), Cityscapes when that is unknown: the colours of a mask preview."""
        try:
            entry = self.entry(name)
        except ValueError:
            return CITYSCAPES
        if entry.label_set_name == CITYSCAPES.name or not entry.num_classes:
            return CITYSCAPES
        return label_set_for(entry.num_classes)

    # ------------------------------------------------------------------ previews

    def preview_image(self, image: object) -> np.ndarray | None:
        """Returns the ``(h, w, 3)`` uint8 preview of an uploaded image file (longer side at most
        :data:`PREVIEW_SIDE`), read by the same reader as a run, or ``None`` without a file.

        Raises:
            gr.Error: the file is not an image the app can read, with what is wrong.
        """
        return read_upload(
            image, lambda path: common.load_image(path, PREVIEW_SIDE, limits_from_env()).rgb
        )

    def preview_mask(self, mask: object, model_name: str | None) -> np.ndarray | None:
        """Returns the ``(h, w, 3)`` uint8 preview of an uploaded class-id mask in the colours of
        the selected model's label set, or ``None`` without a file. Its size and ids are checked
        against the image when a run starts.

        Raises:
            gr.Error: the file is not a mask the app can read, with what is wrong.
        """
        labels = self.label_set(model_name)
        return read_upload(
            mask, lambda path: mask_rgb(load_mask(path, limits_from_env()), labels, PREVIEW_SIDE)
        )

    # ------------------------------------------------------------------ shared run

    def run(self, request: PageRequest, progress: Callable[..., object] | None = None) -> Run:
        """Returns the :class:`Run` of one request: read the image, load the model, read and
        check the mask and the cascade, then run the cascade (per-scale passes shared across
        requests through :data:`hmsa_core.DEFAULT_SCALE_CACHE`). Every input is checked before
        the first forward pass, so a bad one costs no compute; ``progress`` is a Gradio tracker.

        Raises:
            ValueError: any bad input, with what to fix.
        """
        progress = _no_progress if progress is None else progress
        image_path = file_path(request.image)
        if image_path is None:
            raise ValueError("no image given: upload one or click an example")
        limits = limits_from_env()
        loaded = load_sized(image_path, request.max_side, limits)
        progress(0, desc="loading model")
        entry = self.entry(request.model_name)
        model = common.get_model(entry, progress=download_progress(progress, entry.name))
        gt = common.read_mask(
            file_path(request.mask), loaded.size, model.labels, loaded.original_size
        )
        cascade = request_cascade(request, loaded.size, model, limits)
        options = request.options(limits)
        passes = common.planned_passes(model, loaded.size, cascade, options)
        result = zerogpu.infer(
            loaded.rgb,
            cascade,
            model=model,
            method=request.method or common.default_method(model),
            options=options,
            progress=scale_progress(progress, passes),
        )
        return Run(entry, model, loaded, result, gt, Path(image_path).stem or "image")

    # ------------------------------------------------------------------ UI

    def analyse(self, request: PageRequest, progress: Callable[..., object] | None = None) -> tuple:
        """Returns every output of the page for one request, in the order of
        :data:`ANALYSIS_OUTPUTS`: overlay, per-scale gallery, summary, method comparison, IoU
        table and bars, cost table and bars, downloads, before/after slider, per-class toggles
        and the held result (see :meth:`_class_views`). Gradio calls it through
        :func:`page_handler`."""
        progress = _no_progress if progress is None else progress
        with user_errors():
            run = self.run(request, progress)
            progress(1.0, desc="comparing merge methods")
            comparison = compare_methods(run.result, COMPARED_METHODS, gt=run.gt, model=run.model)
            headers, rows = iou_table(comparison)
            iou_df = pd.DataFrame(rows, columns=headers) if headers else pd.DataFrame()
            iou_fig = iou_bars_figure(comparison) if comparison.gt is not None else None
            cost = run.result.cost
            files = self._downloads(run, comparison)
            slider, toggles, held = self._class_views(run.result)
            values = {
                "overlay": gr.AnnotatedImage(
                    value=annotated_value(run.result), color_map=color_map(run.result.labels)
                ),
                "gallery": scale_gallery(run.result) + skipped_panels(run.result),
                "summary": self._summary(run, comparison),
                "comparison_plot": method_comparison_figure(comparison, columns=3),
                "iou_table": iou_df,
                "iou_plot": iou_fig,
                "cost_table": pd.DataFrame(cost_rows(cost, total=True)),
                "cost_plot": cost_figure(cost),
                "downloads": files,
                "slider": slider,
                "class_toggles": toggles,
                "held": held,
                "confidence": confidence_image(run.result),
            }
            return tuple(values[name] for name in ANALYSIS_OUTPUTS)

    def _class_views(self, result: InferenceResult) -> tuple:
        """Returns ``(before/after slider value, per-class toggles update, held result)``: every
        class present shown, the toggles listing them largest first."""
        held = HeldResult.of(result)
        toggles = gr.CheckboxGroup(
            choices=class_choices(held.pred, held.labels),
            value=[cid for cid, _ in class_areas(held.pred, held.labels)],
        )
        return slider_value(held.image, held.pred, held.labels), toggles, held

    def _downloads(self, run: Run, comparison: MethodComparison) -> list[str]:
        stem = run.image_name
        return [
            cached_file(mask_png_bytes(run.result), f"{stem}_pred.png"),
            cached_file(metrics_json(comparison).encode(), f"{stem}_metrics.json"),
        ]

    def arrays(self, request: PageRequest, progress: Callable[..., object] | None = None) -> str:
        """Returns the path of the run's arrays as ``.npz`` (merged and per-scale logits,
        attention, weights). Made on request: the passes come from the per-scale cache, only
        the merge and the compression run. Gradio calls it through :func:`page_handler`."""
        progress = _no_progress if progress is None else progress
        with user_errors():
            run = self.run(request, progress)
            progress(1.0, desc="compressing arrays")
            return cached_file(arrays_npz_bytes(run.result), f"{run.image_name}_arrays.npz")

    def _summary(self, run: Run, comparison: MethodComparison) -> str:
        result, loaded = run.result, run.loaded
        h, w = loaded.size
        size = f"{w} x {h}"
        if loaded.resized:
            size += f" (resized from {loaded.original_size[1]} x {loaded.original_size[0]})"
        cost = result.cost
        cached = cost.cached_scales
        lines = [
            f"**{run.entry.name}** · `{result.method}` over "
            f"({common.format_cascade(result.scales)}) · {size}",
            f"{common.format_flops(cost.gflops)} · {cost.seconds:.2f} s of forward passes · "
            f"ran in {'/'.join(cost.precisions)} · "
            f"{common.format_flops(cost.gflops_saved)} saved by gating · "
            + (
                f"scales {common.format_cascade(cached)} from the cache"
                if cached
                else "no scale from the cache"
            ),
        ]
        if result.gate_note:
            lines.append(result.gate_note[0].upper() + result.gate_note[1:])
        if comparison.scores is not None:
            scored = ", ".join(
                f"{m} {s.miou:.1%}" for m, s in comparison.scores.items() if not math.isnan(s.miou)
            )
            lines.append(f"mIoU vs. the mask: {scored}")
        else:
            lines.append("Add the image's class-id mask to score per-class IoU.")
        if comparison.skipped:
            lines.append(
                "Skipped: " + "; ".join(f"{m}: {why}" for m, why in comparison.skipped.items())
            )
        return "  \n".join(lines)

    def memory_estimate(self, request: PageRequest) -> str:
        """Returns the Markdown line of what the next run will cost before it runs: GFLOPs and
        the peak memory of its largest pass, with the tiling (``HMSA_MAX_TILE_PIXELS``) and
        precision that will run; a short note instead when an input is missing or wrong.
        Gradio calls it through :func:`page_handler` with :data:`ESTIMATE_FIELDS`."""
        try:
            path = file_path(request.image)
            if path is None:
                return "Expected cost: pick an image first."
            limits = limits_from_env()
            entry = self.entry(request.model_name)
            if entry.kind == "pretrained" and not entry.downloaded:
                return "Expected cost: shown once the model is downloaded (press Segment)."
            loaded = load_sized(path, request.max_side, limits)
            model = common.get_model(entry)
            cascade = request_cascade(request, loaded.size, model, limits)
            cost = hmsa_core.estimate_cascade(
                model, loaded.size, cascade, options=request.options(limits)
            )
        except ValueError as exc:
            return f"Expected cost: {exc}"
        return (
            f"Expected cost: {common.format_flops(cost.gflops)} · peak memory of the largest "
            "pass about "
            f"{cost.peak_bytes / 2**20:,.0f} MB in {'/'.join(cost.precisions)} "
            "(before gating skips anything)"
        )

    # ------------------------------------------------------------------ API

    def segment(
        self,
        image: str,
        scales: Any = common.DEFAULT_CASCADE,
        method: str = "",
        model: str = "",
        mask: str | None = None,
        max_side: float = common.DEFAULT_MAX_SIDE,
        arrays: bool = True,
        flip: bool = False,
        gate: float = 0.0,
        gate_by: str = "bound",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects the tracker)
    ) -> tuple[str, dict, str | None]:
        """Segments one image with a scale cascade; returns the mask, per-scale data and maps.

        Args:
            image: the image file (PNG, JPEG, WebP or TIFF).
            scales: the cascade: a list of numbers such as [0.5, 1.0, 2.0], or text "0.5, 1, 2".
            method: merge method: hierarchical, mean, max, explicit or single:<scale>; empty for the model's own.
            model: model name as listed in the app's model menu; empty for the bundled default.
            mask: optional class-id mask PNG of the image, to score mIoU.
            max_side: the image is shrunk so that its longer side is at most this many pixels (0: unchanged).
            arrays: also return the per-scale attention and effective-weight maps as an .npz file (false: the third output is empty).
            flip: also run every scale on the mirrored image and average the merges (flip testing; twice the passes).
            gate: attention gate threshold tau (0: every pass runs whole); hierarchical merge only.
            gate_by: the gate criterion: bound (exact up to a proven bound; default), attention or confidence (both approximate).

        Returns:
            The merged prediction as an indexed PNG (pixel value = class id, palette = class colours);
            a dict: model, method, label_set, image_size [H, W], original_size, scales, per_scale
            (scale, flipped, input_size [h, w], gflops, seconds, cached, mean_attention, mean_weight,
            skipped: the share of the pass's input area gating skipped; with flip a second entry
            per scale for its mirrored pass), flip, gate, gate_by (the criterion asked for),
            gate_approximate, gate_note (what the gate did, empty when ungated), total_gflops,
            total_seconds, classes_present (id, name, fraction), and with a mask
            miou, pixel_accuracy, per_class_iou; and (with arrays) an .npz of float16 maps:
            attention_<s> (h, w) at scale s's input size, weights_<s> (H, W) (they sum to 1 over
            s), top_prob, margin and entropy (H, W) (the merged result's confidence) and
            top_prob_<s> (h, w) of each scale's own logits, plus scales, pred, image,
            class_names and method (see analysis.exports). The dict's confidence holds the
            merged result's mean_top_prob, mean_margin and mean_entropy (nats).
        """
        with user_errors():
            fields = {"method": method, "model_name": model, "max_side": max_side}
            request = PageRequest(
                image, mask, scales, **fields, flip=bool(flip), gate=gate, gate_by=gate_by
            )
            run = self.run(request, progress)
            png = cached_file(mask_png_bytes(run.result), f"{run.image_name}_pred.png")
            maps = self._scale_maps(run) if arrays else None
            return png, self._segment_data(run, request), maps

    def _scale_maps(self, run: Run) -> str:
        """Returns the path of the run's per-scale attention and weight maps as ``.npz``."""
        data = arrays_npz_bytes(run.result, include_logits=False)
        return cached_file(data, f"{run.image_name}_scales.npz")

    def _segment_data(self, run: Run, request: PageRequest) -> dict:
        result = run.result
        labels = result.labels
        per_scale = []
        for c in result.cost.per_scale:
            per = result.per_scale[c.scale]
            weight = result.weights.get(c.scale)
            attention = per.flipped_attention if c.flipped else per.attention
            per_scale.append(
                {
                    "scale": float(c.scale),
                    "flipped": bool(c.flipped),
                    "input_size": [int(c.input_size[0]), int(c.input_size[1])],
                    "gflops": _finite(c.gflops),
                    "seconds": _finite(c.seconds),
                    "cached": bool(c.cached),
                    "mean_attention": None
                    if attention is None
                    else _finite(float(attention.mean())),
                    "mean_weight": None if weight is None else _finite(float(weight.mean())),
                    "skipped": _finite(c.skipped_fraction),
                }
            )
        pred = result.pred.detach().cpu().numpy()
        ids, counts = np.unique(pred, return_counts=True)
        present = [
            {"id": int(i), "name": labels.names[int(i)], "fraction": float(n) / pred.size}
            for i, n in zip(ids, counts)
            if 0 <= int(i) < labels.num_classes
        ]
        data: dict = {
            "model": run.entry.name,
            "method": result.method,
            "label_set": labels.name,
            "image_size": list(result.size),
            "original_size": list(run.loaded.original_size),
            "scales": [float(s) for s in result.scales],
            "per_scale": per_scale,
            "flip": bool(result.flip),
            "gate": float(request.gate or 0.0),
            "gate_by": request.gate_by or "bound",
            "gate_approximate": bool(result.gate_approximate),
            "gate_note": result.gate_note,
            "total_gflops": _finite(result.cost.gflops),
            "total_seconds": _finite(result.cost.seconds),
            "classes_present": present,
            "confidence": _confidence_means(result),
        }
        if run.gt is not None:
            scores = score_prediction(result.pred, run.gt, labels.num_classes, labels.ignore_index)
            data.update(scores.as_dict(labels))
        return data
