"""Turning inference results into the values Gradio components display.

Nothing here computes a segmentation: it only reshapes what :mod:`hmsa_core` and
:mod:`analysis` produced into the forms ``gr.AnnotatedImage``, ``gr.Gallery`` and
``gr.Dataframe`` take.
"""

from __future__ import annotations

import functools

import numpy as np
import plotly.colors
import torch

from analysis.compare import MethodComparison
from analysis.exports import scale_key
from analysis.figures import ATTENTION_SCALE
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet

AnnotatedValue = tuple[np.ndarray, list[tuple[np.ndarray, str]]]
GalleryItem = tuple[np.ndarray, str]


@functools.lru_cache(maxsize=1)
def _viridis_lut() -> np.ndarray:
    """Returns the ``(256, 3)`` uint8 lookup table of the figures' attention colour scale."""
    samples = plotly.colors.sample_colorscale(ATTENTION_SCALE, [i / 255 for i in range(256)])
    return np.asarray([plotly.colors.unlabel_rgb(c) for c in samples]).round().astype(np.uint8)


def heatmap_rgb(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 colour image (the figures' attention scale, Viridis) of an
    ``(H, W)`` map of values in [0, 1]."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    index = np.nan_to_num(np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return _viridis_lut()[index]


def hex_color(rgb: tuple[int, int, int]) -> str:
    """Returns ``#rrggbb`` for an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def color_map(labels: LabelSet) -> dict[str, str]:
    """Returns class name -> ``#rrggbb`` for every class of ``labels`` (AnnotatedImage legend)."""
    return {name: hex_color(color) for name, color in zip(labels.names, labels.colors)}


def annotated_value(result: InferenceResult) -> AnnotatedValue:
    """Returns ``(image (H, W, 3) uint8, [(mask (H, W) float, class name), ...])`` for the classes
    present in the merged prediction, largest first: the value of ``gr.AnnotatedImage``."""
    pred = result.pred.detach().cpu().numpy()
    ids, counts = np.unique(pred, return_counts=True)
    order = np.argsort(-counts)
    names = result.labels.names
    annotations = [
        ((pred == ids[i]).astype(np.float32), names[int(ids[i])])
        for i in order
        if 0 <= int(ids[i]) < len(names)
    ]
    return result.image, annotations


def scale_gallery(result: InferenceResult) -> list[GalleryItem]:
    """Returns the captioned per-scale images, highest scale first: each scale's own prediction
    ``(h, w, 3)``, its attention ``(h, w, 3)`` (when the model has one) and its effective weight
    ``(H, W, 3)`` in the merge (Viridis: dark 0, yellow 1)."""
    items: list[GalleryItem] = []
    labels = result.labels
    for scale in sorted(result.per_scale, reverse=True):
        per = result.per_scale[scale]
        tag = f"{scale_key(scale)}x"
        items.append((labels.colorize(per.logits.argmax(0)), f"{tag} prediction"))
        if per.attention is not None:
            mean = float(per.attention.mean())
            items.append((heatmap_rgb(per.attention), f"{tag} attention (mean {mean:.2f})"))
        weight = result.weights.get(scale)
        if weight is not None:
            share = float(weight.mean())
            items.append((heatmap_rgb(weight), f"{tag} weight ({share:.0%} of merge)"))
    return items


def iou_table(comparison: MethodComparison) -> tuple[list[str], list[list[object]]]:
    """Returns ``(headers, rows)`` of per-class IoU: one row per class present in ground truth or
    any prediction, one column per merge method, then an ``mIoU`` row. Empty without ground truth."""
    if comparison.scores is None:
        return [], []
    labels = comparison.labels
    methods = list(comparison.scores)
    headers = ["class", *methods]
    present = np.zeros(labels.num_classes, dtype=bool)
    for scores in comparison.scores.values():
        present |= np.asarray(scores.present, dtype=bool)
    rows: list[list[object]] = []
    for cls in np.flatnonzero(present):
        row: list[object] = [labels.names[int(cls)]]
        for method in methods:
            value = float(comparison.scores[method].iou[cls])
            row.append(None if np.isnan(value) else round(value, 4))
        rows.append(row)
    miou = [comparison.scores[m].miou for m in methods]
    rows.append(["mIoU", *(None if np.isnan(v) else round(float(v), 4) for v in miou)])
    return headers, rows
