"""Confidence maps for the front ends (issue 19 item 3): one plotly grid of the merged result's
and every scale's top probability, top-2 margin and entropy, and a colour image of one map
(Gradio's output and the API's PNG).

The maps themselves come from :mod:`hmsa_core.confidence` (softmax of the held logits, never a
forward pass); this module only draws them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from analysis.figures import (
    ATTENTION_SCALE,
    HEATMAP_SIDE,
    heatmap_rgb,
    heatmap_trace,
    stride_for,
    to_numpy,
)
from hmsa_core.confidence import ConfidenceMaps, confidence_maps, result_confidence
from hmsa_core.inference import InferenceResult

#: The three maps of :class:`~hmsa_core.confidence.ConfidenceMaps`, in display order.
CONFIDENCE_KINDS: tuple[str, ...] = ("top_prob", "margin", "entropy")
#: Readable name of each map.
KIND_TITLES: dict[str, str] = {
    "top_prob": "top probability",
    "margin": "top-2 margin",
    "entropy": "entropy (nats)",
}


def confidence_range(kind: str, num_classes: int) -> tuple[float, float]:
    """Returns the ``(vmin, vmax)`` a map of ``kind`` can take with ``num_classes`` classes:
    ``(0, 1)`` for ``top_prob`` and ``margin``, ``(0, log C)`` for ``entropy``.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in CONFIDENCE_KINDS:
        raise ValueError(
            f"unknown confidence map {kind!r}; use one of {', '.join(CONFIDENCE_KINDS)}"
        )
    if kind == "entropy":
        return 0.0, max(math.log(max(num_classes, 2)), 1e-6)
    return 0.0, 1.0


def _map_of(maps: ConfidenceMaps, kind: str) -> np.ndarray:
    return to_numpy(maps.as_dict()[kind])


def _strided_maps(logits: torch.Tensor, side: int) -> tuple[ConfidenceMaps, int]:
    """Returns the confidence maps of ``(C, H, W)`` logits taken every ``step`` pixels, the
    stride that brings the long side to ``<= side`` (a heatmap panel shows no more), and
    ``step``: per-pixel maps, so the drawn values are exactly the full maps' at those pixels."""
    step = stride_for(tuple(logits.shape[-2:]), side)
    return confidence_maps(logits[:, ::step, ::step]), step


def confidence_grid_figure(
    result: InferenceResult,
    kinds: Sequence[str] = CONFIDENCE_KINDS,
    *,
    heatmap_side: int = HEATMAP_SIDE,
) -> go.Figure:
    """Returns a grid of confidence maps: the first row is the merged result's (``(H, W)``),
    then one row per scale from its own logits at its own size ``(h_s, w_s)``; one column per
    map in ``kinds``, each column on its own fixed colour range (see :func:`confidence_range`;
    bright is confident for ``top_prob`` and ``margin``, uncertain for ``entropy``).

    Raises:
        ValueError: an unknown kind, or no kind.
    """
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("pick at least one confidence map (top_prob, margin or entropy)")
    ranges = [confidence_range(k, result.labels.num_classes) for k in kinds]
    rows: list[tuple[str, ConfidenceMaps, int]] = [
        (f"merged ({result.method})", *_strided_maps(result.logits, heatmap_side))
    ]
    rows += [
        (f"scale {s:g}", *_strided_maps(result.per_scale[s].logits, heatmap_side))
        for s in sorted(result.per_scale)
    ]
    titles = [f"{KIND_TITLES[k]} · {name}" for name, _, _ in rows for k in kinds]
    fig = make_subplots(
        rows=len(rows),
        cols=len(kinds),
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=0.08 / max(1, len(rows) - 1) if len(rows) > 1 else 0.0,
    )
    for r, (name, maps, step) in enumerate(rows, start=1):
        for c, kind in enumerate(kinds, start=1):
            axis = "coloraxis" if c == 1 else f"coloraxis{c}"
            trace = heatmap_trace(
                _map_of(maps, kind), heatmap_side, coloraxis=axis, name=name, label=kind
            )
            fig.add_trace(trace.update(dx=step, dy=step), r, c)  # the map's own pixels
    _style(fig, kinds, ranges)
    h, w = result.size
    row_height = max(150, min(300, int(1100 / len(kinds) * h / max(w, 1)) + 50))
    fig.update_layout(
        height=row_height * len(rows) + 130,
        title="confidence of the merged result and of every scale (from the held logits)",
        margin={"l": 10, "r": 10, "t": 70, "b": 60},
        showlegend=False,
        plot_bgcolor="white",
    )
    return fig


def _style(fig: go.Figure, kinds: Sequence[str], ranges: Sequence[tuple[float, float]]) -> None:
    """Image-like axes and one horizontal colour bar under each column."""
    from analysis.figures import style_image_axes

    style_image_axes(fig)
    width = 1.0 / len(kinds)
    for c, (kind, (vmin, vmax)) in enumerate(zip(kinds, ranges), start=1):
        name = "coloraxis" if c == 1 else f"coloraxis{c}"
        fig.update_layout(
            {
                name: {
                    "colorscale": ATTENTION_SCALE,
                    "cmin": vmin,
                    "cmax": vmax,
                    "colorbar": {
                        "title": {"text": KIND_TITLES[kind], "side": "top"},
                        "orientation": "h",
                        "x": (c - 0.5) * width,
                        "xanchor": "center",
                        "len": width * 0.8,
                        "y": -0.02,
                        "yanchor": "top",
                        "thickness": 10,
                    },
                }
            }
        )


def confidence_image(
    result: InferenceResult, kind: str = "top_prob", scale: float | None = None
) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 colour image of one confidence map of the merged result
    (``scale=None``) or of one scale's own logits (``(h_s, w_s, 3)``), on the figures' colour
    scale over :func:`confidence_range` (bright = confident for ``top_prob`` and ``margin``;
    for ``entropy`` bright = uncertain)."""
    vmin, vmax = confidence_range(kind, result.labels.num_classes)
    maps = result_confidence(result, scale)
    return heatmap_rgb(_map_of(maps, kind), vmin, vmax)


def confidence_png_bytes(
    result: InferenceResult, kind: str = "top_prob", scale: float | None = None
) -> bytes:
    """Returns :func:`confidence_image` encoded as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(confidence_image(result, kind, scale)).save(buffer, format="PNG")
    return buffer.getvalue()
