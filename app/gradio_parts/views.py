"""Turning inference results into the values Gradio components display.

Nothing here computes a segmentation: it only reshapes what :mod:`hmsa_core` and
:mod:`analysis` produced (:func:`analysis.figures.scale_panels` for the per-scale images,
:func:`analysis.exports.iou_table` for the IoU table, :func:`analysis.figures.blend` for the
overlay) into the forms ``gr.AnnotatedImage``, ``gr.ImageSlider``, ``gr.CheckboxGroup``,
``gr.Gallery`` and ``gr.Dataframe`` take.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from analysis.exports import scale_key
from analysis.figures import blend, scale_panels, stride_for
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet

AnnotatedValue = tuple[np.ndarray, list[tuple[np.ndarray, str]]]
GalleryItem = tuple[np.ndarray, str]
SliderValue = tuple[np.ndarray, np.ndarray]

#: Opacity of the class colours over the image in the before/after slider's overlay.
OVERLAY_OPACITY = 0.55


def hex_color(rgb: tuple[int, int, int]) -> str:
    """Returns ``#rrggbb`` for an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def color_map(labels: LabelSet) -> dict[str, str]:
    """Returns class name -> ``#rrggbb`` for every class of ``labels`` (AnnotatedImage legend)."""
    return {name: hex_color(color) for name, color in zip(labels.names, labels.colors)}


def class_areas(pred: np.ndarray, labels: LabelSet) -> list[tuple[int, float]]:
    """Returns ``[(class id, fraction of pixels), ...]`` of the classes of ``labels`` present in
    an ``(H, W)`` class-id map, largest first (ids outside the set, such as ignore, left out)."""
    ids, counts = np.unique(pred, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [
        (int(ids[i]), float(counts[i]) / pred.size)
        for i in order
        if 0 <= int(ids[i]) < labels.num_classes
    ]


def annotated_layers(
    image: np.ndarray, pred: np.ndarray, labels: LabelSet, visible: Iterable[int] | None = None
) -> AnnotatedValue:
    """Returns ``(image (H, W, 3) uint8, [(mask (H, W) uint8 0/1, class name), ...])`` for the
    classes present in the ``(H, W)`` prediction ``pred``, largest first, keeping only the ids
    in ``visible`` (``None``: all): the value of ``gr.AnnotatedImage``."""
    keep = None if visible is None else {int(v) for v in visible}
    annotations = [
        ((pred == cid).astype(np.uint8), labels.names[cid])
        for cid, _ in class_areas(pred, labels)
        if keep is None or cid in keep
    ]
    return image, annotations


def annotated_value(result: InferenceResult) -> AnnotatedValue:
    """Returns the ``gr.AnnotatedImage`` value of a result's merged prediction, every class
    present shown (see :func:`annotated_layers`)."""
    return annotated_layers(result.image, result.pred.detach().cpu().numpy(), result.labels)


def class_choices(pred: np.ndarray, labels: LabelSet) -> list[tuple[str, int]]:
    """Returns ``[("road (41%)", 0), ...]``: the ``(label, class id)`` choices of the per-class
    toggles, one per class present in the ``(H, W)`` prediction, largest first."""
    return [(f"{labels.names[cid]} ({share:.0%})", cid) for cid, share in class_areas(pred, labels)]


def class_overlay(
    image: np.ndarray,
    pred: np.ndarray,
    labels: LabelSet,
    visible: Iterable[int] | None = None,
    opacity: float = OVERLAY_OPACITY,
) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 image with the class colours of ``pred`` ``(H, W)`` blended
    in at ``opacity`` where the class is in ``visible`` (``None``: every class); pixels of
    hidden classes keep the image's own colour."""
    painted = blend(image, labels.colorize(pred), opacity)
    if visible is None:
        return painted
    shown = np.isin(pred, np.asarray(sorted({int(v) for v in visible}), dtype=np.int64))
    return np.where(shown[:, :, None], painted, image).astype(np.uint8)


def slider_value(
    image: np.ndarray, pred: np.ndarray, labels: LabelSet, visible: Iterable[int] | None = None
) -> SliderValue:
    """Returns ``(input (H, W, 3), overlay (H, W, 3))`` uint8: the value of the before/after
    ``gr.ImageSlider`` (see :func:`class_overlay`)."""
    return image, class_overlay(image, pred, labels, visible)


def mask_rgb(mask: np.ndarray, labels: LabelSet, max_side: int) -> np.ndarray:
    """Returns the ``(h, w, 3)`` uint8 colour image of an ``(H, W)`` class-id mask in the colours
    of ``labels`` (ids outside the set black), subsampled (nearest) so that its longer side is at
    most ``max_side``: the mask's preview."""
    step = stride_for(mask.shape, max_side)
    return labels.colorize(mask[::step, ::step])


def scale_gallery(result: InferenceResult) -> list[GalleryItem]:
    """Returns the captioned per-scale images of :func:`analysis.figures.scale_panels`, highest
    scale first: each scale's own prediction ``(h, w, 3)``, its attention ``(h, w, 3)`` (when
    the model has one) and its effective weight ``(H, W, 3)`` in the merge (Viridis: dark 0,
    yellow 1)."""
    items: list[GalleryItem] = []
    for panel in reversed(scale_panels(result)):
        tag = f"{scale_key(panel.scale)}x"
        items.append((panel.prediction, f"{tag} prediction"))
        if panel.attention is not None:
            unused = "" if panel.attention_used else ", unused by HMSA"
            caption = f"{tag} attention (mean {panel.mean_attention:.2f}{unused})"
            items.append((panel.attention, caption))
        if panel.weight is not None:
            items.append((panel.weight, f"{tag} weight ({panel.mean_weight:.0%} of merge)"))
    return items
