"""The Gradio event handlers: read inputs, call :mod:`hmsa_core` and :mod:`analysis`, shape outputs.

Every user mistake surfaces as ``gr.Error`` carrying the ``ValueError`` message of the layer
that caught it, so the page shows what to fix and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from hmsa_core.discovery import ModelEntry
from hmsa_core.images import load_mask
from hmsa_core.inference import InferenceResult, ProgressFn
from hmsa_core.labels import CITYSCAPES, LabelSet, label_set_for
from hmsa_core.limits import limits_from_env
from hmsa_core.models import MultiScaleSegmenter

#: Methods the comparison tab merges ("single" expands to every scale of the cascade).
COMPARED_METHODS: tuple[str, ...] = ("hierarchical", "mean", "max", "single", "explicit")
#: Longer side (pixels) of the upload previews.
PREVIEW_SIDE = 512


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


def scale_progress(progress: gr.Progress) -> ProgressFn:
    """Returns an :func:`hmsa_core.infer` progress callback that moves ``progress`` one step per scale."""

    def report(scale: float, index: int, total: int, cached: bool) -> None:
        source = "from cache" if cached else "computed"
        progress((index + 1, total), desc=f"scale {scale:g} {source}", unit="scales")

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


def cached_file(data: bytes, name: str) -> str:
    """Returns the path of ``data`` written into Gradio's upload cache (content-addressed, cleaned
    by the app's ``delete_cache`` policy)."""
    return save_bytes_to_cache(data, name, cache_dir=get_upload_folder())


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


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
        with user_errors():
            path = file_path(image)
            if path is None:
                return None
            return common.load_image(path, PREVIEW_SIDE, limits_from_env()).rgb

    def preview_mask(self, mask: object, model_name: str | None) -> np.ndarray | None:
        """Returns the ``(h, w, 3)`` uint8 preview of an uploaded class-id mask in the colours of
        the selected model's label set, or ``None`` without a file. Its size and ids are checked
        against the image when a run starts.

        Raises:
            gr.Error: the file is not a mask the app can read, with what is wrong.
        """
        with user_errors():
            path = file_path(mask)
            if path is None:
                return None
            ids = load_mask(path, limits_from_env())
            return mask_rgb(ids, self.label_set(model_name), PREVIEW_SIDE)

    # ------------------------------------------------------------------ shared run

    def run(
        self,
        image: object,
        mask: object,
        scales: object,
        method: str | None,
        model_name: str | None,
        max_side: float | None,
        progress: gr.Progress,
        extra_scales: str = "",
        precision: str = "auto",
        gate: float = 0.0,
    ) -> Run:
        """Returns the :class:`Run` of one request: read the image, load the model, read and
        check the mask and the cascade, then run the cascade (per-scale passes shared across
        requests through :data:`hmsa_core.DEFAULT_SCALE_CACHE`). Every input is checked before
        the first forward pass, so a bad one costs no compute.

        Raises:
            ValueError: any bad input, with what to fix.
        """
        image_path = file_path(image)
        if image_path is None:
            raise ValueError("no image given: upload one or click an example")
        limits = limits_from_env()
        side = int(max_side) if max_side else None
        loaded = common.load_image(image_path, side, limits)
        progress(0, desc="loading model")
        entry = self.entry(model_name)
        model = common.get_model(entry, progress=download_progress(progress, entry.name))
        gt = common.read_mask(file_path(mask), loaded.size, model.labels, loaded.original_size)
        toggled = coerce_scales(scales)
        if isinstance(toggled, str):
            toggled, extra_scales = (), f"{toggled} {extra_scales}"
        cascade = common.build_cascade(
            toggled, extra_scales, loaded.size, model.min_input_side, limits
        )
        chosen = method or common.default_method(model)
        result = zerogpu.infer(
            loaded.rgb,
            cascade,
            model=model,
            method=chosen,
            precision=precision or "auto",
            gate=float(gate or 0.0),
            progress=scale_progress(progress),
            limits=limits,
        )
        return Run(entry, model, loaded, result, gt, Path(image_path).stem or "image")

    # ------------------------------------------------------------------ UI

    def analyse(
        self,
        image: str | None,
        mask: str | None,
        scales: list[float],
        extra_scales: str,
        method: str,
        model_name: str,
        max_side: float,
        precision: str = "auto",
        gate: float = 0.0,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects the tracker)
    ) -> tuple:
        """Returns every output of the page for one image: overlay, per-scale gallery, summary,
        method comparison, IoU table and bars, cost table and bars, downloads, before/after
        slider, per-class toggles and the held result (see :meth:`_class_views`)."""
        with user_errors():
            run = self.run(
                image,
                mask,
                scales,
                method,
                model_name,
                max_side,
                progress,
                extra_scales,
                precision,
                gate,
            )
            progress(1.0, desc="comparing merge methods")
            comparison = compare_methods(run.result, COMPARED_METHODS, gt=run.gt, model=run.model)
            headers, rows = iou_table(comparison)
            iou_df = pd.DataFrame(rows, columns=headers) if headers else pd.DataFrame()
            iou_fig = iou_bars_figure(comparison) if comparison.gt is not None else None
            cost = run.result.cost
            files = self._downloads(run, comparison)
            overlay = gr.AnnotatedImage(
                value=annotated_value(run.result), color_map=color_map(run.result.labels)
            )
            return (
                overlay,
                scale_gallery(run.result) + skipped_panels(run.result),
                self._summary(run, comparison),
                method_comparison_figure(comparison, columns=3),
                iou_df,
                iou_fig,
                pd.DataFrame(cost_rows(cost, total=True)),
                cost_figure(cost),
                files,
                *self._class_views(run.result),
            )

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

    def arrays(
        self,
        image: str | None,
        mask: str | None,
        scales: list[float],
        extra_scales: str,
        method: str,
        model_name: str,
        max_side: float,
        precision: str = "auto",
        gate: float = 0.0,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio injects the tracker)
    ) -> str:
        """Returns the path of the run's arrays as ``.npz`` (merged and per-scale logits,
        attention, weights). Made on request: the passes come from the per-scale cache, only
        the merge and the compression run."""
        with user_errors():
            run = self.run(
                image,
                mask,
                scales,
                method,
                model_name,
                max_side,
                progress,
                extra_scales,
                precision,
                gate,
            )
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
            f"{cost.gflops:.2f} GFLOPs · {cost.seconds:.2f} s of forward passes · "
            f"ran in {'/'.join(cost.precisions)} · {cost.gflops_saved:.2f} GFLOPs saved by gating · "
            + (
                f"scales {common.format_cascade(cached)} from the cache"
                if cached
                else "no scale from the cache"
            ),
        ]
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

    def memory_estimate(
        self,
        image: object,
        scales: object,
        extra_scales: str,
        model_name: str | None,
        max_side: float | None,
        precision: str | None,
    ) -> str:
        """Returns the Markdown line of what the next run will cost before it runs: GFLOPs and
        the peak memory of its largest pass, with the tiling (``HMSA_MAX_TILE_PIXELS``) and
        precision that will run; a short note instead when an input is missing or wrong."""
        try:
            path = file_path(image)
            if path is None:
                return "Expected cost: pick an image first."
            limits = limits_from_env()
            entry = self.entry(model_name)
            if entry.kind == "pretrained" and not entry.downloaded:
                return "Expected cost: shown once the model is downloaded (press Segment)."
            loaded = common.load_image(path, int(max_side) if max_side else None, limits)
            model = common.get_model(entry)
            toggled = coerce_scales(scales)
            if isinstance(toggled, str):
                toggled, extra_scales = (), f"{toggled} {extra_scales}"
            cascade = common.build_cascade(
                toggled, extra_scales or "", loaded.size, model.min_input_side, limits
            )
            cost = hmsa_core.estimate_cascade(
                model, loaded.size, cascade, precision=precision or "auto", limits=limits
            )
        except ValueError as exc:
            return f"Expected cost: {exc}"
        return (
            f"Expected cost: {cost.gflops:.2f} GFLOPs · peak memory of the largest pass about "
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

        Returns:
            The merged prediction as an indexed PNG (pixel value = class id, palette = class colours);
            a dict: model, method, label_set, image_size [H, W], original_size, scales, per_scale
            (scale, input_size [h, w], gflops, seconds, cached, mean_attention, mean_weight),
            total_gflops, total_seconds, classes_present (id, name, fraction), and with a mask
            miou, pixel_accuracy, per_class_iou; and (with arrays) an .npz of float16 maps:
            attention_<s> (h, w) at scale s's input size, weights_<s> (H, W) (they sum to 1 over
            s), plus scales, pred, image, class_names and method (see analysis.exports).
        """
        with user_errors():
            run = self.run(image, mask, scales, method, model, max_side, progress)
            png = cached_file(mask_png_bytes(run.result), f"{run.image_name}_pred.png")
            maps = self._scale_maps(run) if arrays else None
            return png, self._segment_data(run), maps

    def _scale_maps(self, run: Run) -> str:
        """Returns the path of the run's per-scale attention and weight maps as ``.npz``."""
        data = arrays_npz_bytes(run.result, include_logits=False)
        return cached_file(data, f"{run.image_name}_scales.npz")

    def _segment_data(self, run: Run) -> dict:
        result = run.result
        labels = result.labels
        per_scale = []
        for c in result.cost.per_scale:
            per = result.per_scale[c.scale]
            weight = result.weights.get(c.scale)
            per_scale.append(
                {
                    "scale": float(c.scale),
                    "input_size": [int(c.input_size[0]), int(c.input_size[1])],
                    "gflops": _finite(c.gflops),
                    "seconds": _finite(c.seconds),
                    "cached": bool(c.cached),
                    "mean_attention": None
                    if per.attention is None
                    else _finite(float(per.attention.mean())),
                    "mean_weight": None if weight is None else _finite(float(weight.mean())),
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
            "total_gflops": _finite(result.cost.gflops),
            "total_seconds": _finite(result.cost.seconds),
            "classes_present": present,
        }
        if run.gt is not None:
            scores = score_prediction(result.pred, run.gt, labels.num_classes, labels.ignore_index)
            data.update(scores.as_dict(labels))
        return data
