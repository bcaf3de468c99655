"""Turning inference results into the values Gradio components display.

Nothing here computes a segmentation or colours a map: it only reshapes what :mod:`hmsa_core`
and :mod:`analysis` produced (:func:`analysis.figures.scale_panels` for the per-scale images,
:func:`analysis.exports.iou_table` for the IoU table) into the forms ``gr.AnnotatedImage``,
``gr.Gallery`` and ``gr.Dataframe`` take.
"""

from __future__ import annotations

import numpy as np

from analysis.exports import scale_key
from analysis.figures import scale_panels, stride_for
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet

AnnotatedValue = tuple[np.ndarray, list[tuple[np.ndarray, str]]]
GalleryItem = tuple[np.ndarray, str]


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
