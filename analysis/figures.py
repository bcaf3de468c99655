"""Plotly figures of what HMSA did: overlay, per-scale grid, method comparison, IoU, cost, Pareto.

Every function takes an inference result, a method comparison, a cost or a sweep table and
returns a :class:`plotly.graph_objects.Figure`; nothing here runs a model. Images are drawn as
``go.Image`` traces holding a PNG data URI (small, offline), downsampled by an integer stride so
that their long side stays at most ``max_side`` pixels; heatmaps are downsampled likewise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from PIL import Image
from plotly.subplots import make_subplots

from analysis.cascades import format_cascade, row_label
from analysis.compare import MethodComparison
from hmsa_core.cost import CascadeCost
from hmsa_core.display import png_data_uri
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet
from hmsa_core.models.base import scaled_size

if TYPE_CHECKING:
    from analysis.sweep import SweepRow, SweepTable

MAX_SIDE = 1024  # long side of an image drawn alone
PANEL_SIDE = 384  # long side of an image in a grid of panels
HEATMAP_SIDE = 192  # long side of a heatmap panel (its values travel as numbers)
HOVER_SIDE = 128  # long side of the overlay's hover grid

ATTENTION_SCALE = "Viridis"
ERROR_COLORS = {"correct": (46, 160, 67), "wrong": (214, 39, 40), "ignore": (40, 40, 40)}
METHOD_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Returns ``x`` as a numpy array on the CPU (tensors detached)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def stride_for(size: tuple[int, int], max_side: int) -> int:
    """Returns the smallest integer stride that brings the long side of ``size`` to ``<= max_side``."""
    return max(1, math.ceil(max(size) / max(1, max_side)))


def image_trace(
    rgb: np.ndarray, max_side: int = MAX_SIDE, *, smooth: bool = True, name: str = ""
) -> go.Image:
    """Returns a ``go.Image`` of an ``(H, W, 3)`` uint8 image in its own pixel coordinates.

    The image is reduced by an integer stride so its long side is ``<= max_side`` (box-filtered
    when ``smooth``, else nearest, for class maps); ``x0/dx`` keep the original coordinates.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    step = stride_for(rgb.shape[:2], max_side)
    if step > 1:
        small = np.asarray(Image.fromarray(rgb).reduce(step)) if smooth else rgb[::step, ::step]
    else:
        small = rgb
    return go.Image(
        source=png_data_uri(small),
        x0=(step - 1) / 2,
        y0=(step - 1) / 2,
        dx=step,
        dy=step,
        hoverinfo="skip",
        name=name,
    )


def heatmap_trace(
    values: np.ndarray,
    max_side: int = HEATMAP_SIDE,
    *,
    coloraxis: str | None = "coloraxis",
    name: str = "",
    label: str = "value",
) -> go.Heatmap:
    """Returns a ``go.Heatmap`` of an ``(H, W)`` map, strided to ``<= max_side``, in the map's
    own pixel coordinates (hover shows ``label``)."""
    values = np.asarray(values, dtype=np.float32)
    step = stride_for(values.shape, max_side)
    small = values[::step, ::step]
    return go.Heatmap(
        z=small,
        x0=0,
        dx=step,
        y0=0,
        dy=step,
        coloraxis=coloraxis,
        name=name,
        hovertemplate=f"x %{{x}}, y %{{y}}<br>{label} %{{z:.3f}}<extra>{name}</extra>",
    )


def style_image_axes(fig: go.Figure) -> go.Figure:
    """Makes every subplot of ``fig`` an image panel: y down, equal aspect, no ticks or grid."""
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(
        showticklabels=False,
        showgrid=False,
        zeroline=False,
        autorange="reversed",
        constrain="domain",
    )
    for axis in fig.select_yaxes():
        axis.scaleanchor = axis.anchor or "x"
    return fig


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def legend_marker(
    name: str, color: str, *, group: str | None = None, symbol: str = "square"
) -> go.Scatter:
    """Returns an invisible scatter point that only adds a legend entry of ``color``."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        marker={"color": color, "size": 12, "symbol": symbol},
        name=name,
        legendgroup=group,
        showlegend=True,
        hoverinfo="skip",
    )


def blend(rgb: np.ndarray, overlay: np.ndarray, opacity: float) -> np.ndarray:
    """Returns ``(1 - opacity) * rgb + opacity * overlay`` as ``(H, W, 3)`` uint8."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    out = (1.0 - opacity) * rgb.astype(np.float32) + opacity * overlay.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def classes_present(labels: LabelSet, *maps: np.ndarray) -> list[int]:
    """Returns the sorted class ids of ``labels`` that occur in any of the ``(H, W)`` maps."""
    ids: set[int] = set()
    for m in maps:
        ids.update(int(v) for v in np.unique(m) if 0 <= v < labels.num_classes)
    return sorted(ids)


def sample_logits(
    logits: torch.Tensor, out_size: tuple[int, int], grid: tuple[np.ndarray, np.ndarray]
) -> torch.Tensor:
    """Returns ``(C, gh, gw)`` values of ``(C, h, w)`` logits resized to ``out_size`` (bilinear,
    ``align_corners=False``), read only at output pixels ``rows (gh,) x cols (gw,)``.

    Equal to resizing to ``out_size`` and indexing, without building the full-size map.
    """
    rows, cols = grid
    h_out, w_out = out_size
    ys = torch.as_tensor(2.0 * (rows + 0.5) / h_out - 1.0, dtype=torch.float32)
    xs = torch.as_tensor(2.0 * (cols + 0.5) / w_out - 1.0, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([gx, gy], dim=-1)[None].to(logits.device)
    sampled = F.grid_sample(
        logits[None].float(), coords, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0]


def _grid_values(x: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """Returns ``x`` ``(..., H, W)`` read at rows ``(gh,)`` x cols ``(gw,)``: ``(..., gh, gw)``."""
    r = torch.as_tensor(rows, device=x.device)
    c = torch.as_tensor(cols, device=x.device)
    return x.index_select(-2, r).index_select(-1, c)


# --------------------------------------------------------------------------- overlay


def overlay_figure(
    result: InferenceResult,
    opacity: float = 0.5,
    *,
    max_side: int = MAX_SIDE,
    hover_side: int = HOVER_SIDE,
) -> go.Figure:
    """Returns the input with the colourised prediction blended in at ``opacity``.

    The legend lists the classes present with their palette colours. Hovering shows, on a
    grid of at most ``hover_side`` cells on the long side, the merged class and its probability,
    and per scale the probability that scale's own logits (softmax, resized to output size)
    give that class, with the scale's effective weight when known.
    """
    labels = result.labels
    pred = to_numpy(result.pred).astype(np.int64)
    h, w = pred.shape
    color = labels.colorize(pred)
    fig = go.Figure()
    fig.add_trace(image_trace(blend(result.image, color, opacity), max_side, name="overlay"))

    step = stride_for((h, w), hover_side)
    rows = np.arange(h)[step // 2 :: step] if h > step // 2 else np.arange(h)[:1]
    cols = np.arange(w)[step // 2 :: step] if w > step // 2 else np.arange(w)[:1]
    grid_pred = pred[np.ix_(rows, cols)]
    merged_prob = to_numpy(_grid_values(result.probs, rows, cols))
    take = grid_pred[None]
    parts = [np.take_along_axis(merged_prob, take, 0)[0]]
    lines = ["<b>%{text}</b> %{customdata[0]:.2f}"]
    scales = sorted(result.per_scale)
    with torch.no_grad():
        for scale in scales:
            logits = sample_logits(result.per_scale[scale].logits, (h, w), (rows, cols))
            probs = torch.softmax(logits, dim=0).cpu().numpy()
            parts.append(np.take_along_axis(probs, take, 0)[0])
            line = f"scale {scale:g}: p %{{customdata[{len(parts) - 1}]:.2f}}"
            if scale in result.weights:
                parts.append(to_numpy(_grid_values(result.weights[scale], rows, cols)))
                line += f", weight %{{customdata[{len(parts) - 1}]:.2f}}"
            lines.append(line)
    custom = np.stack(parts, axis=-1).astype(np.float32)
    names = np.asarray(labels.names, dtype=object)
    text = np.where(
        grid_pred < labels.num_classes, names[grid_pred.clip(0, labels.num_classes - 1)], "?"
    )
    fig.add_trace(
        go.Heatmap(
            z=np.zeros(grid_pred.shape, dtype=np.uint8),
            x=cols,
            y=rows,
            text=text,
            customdata=custom,
            colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]],
            showscale=False,
            hovertemplate="<br>".join(lines) + "<extra></extra>",
            name="hover",
            showlegend=False,
        )
    )
    for c in classes_present(labels, pred):
        fig.add_trace(legend_marker(labels.names[c], _rgb(labels.colors[c])))
    style_image_axes(fig)
    fig.update_layout(
        title=f"{result.method} on cascade ({format_cascade(result.scales, ', ')})",
        legend_title_text="classes",
        height=int(min(1000, max(320, 60 + 900 * h / max(w, 1)))),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        plot_bgcolor="white",
    )
    return fig


# --------------------------------------------------------------------------- per-scale grid


def _scaled_input(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Returns the ``(h, w, 3)`` uint8 input at ``scale`` (bilinear, as the model saw it)."""
    h, w = scaled_size(rgb.shape[:2], scale)
    if (h, w) == rgb.shape[:2]:
        return rgb
    return np.asarray(
        Image.fromarray(rgb).resize((max(w, 1), max(h, 1)), Image.Resampling.BILINEAR)
    )


def scale_grid_figure(
    result: InferenceResult, *, panel_side: int = PANEL_SIDE, heatmap_side: int = HEATMAP_SIDE
) -> go.Figure:
    """Returns a grid with one row per scale: the input at that scale, that scale's own
    prediction, its raw attention ``(h, w)`` and its effective weight map ``(H, W)``.

    Attention and weights share one colour scale from 0 to 1. Panels the result lacks (a model
    without attention, a result kept without attention) say so.
    """
    labels = result.labels
    scales = sorted(result.per_scale)
    titles = []
    for s in scales:
        per = result.per_scale[s]
        h, w = per.logits.shape[-2:]
        titles += [
            f"input @ {s:g} ({w} x {h})",
            f"prediction @ {s:g}",
            (f"attention a @ {s:g}" + (" (unused)" if s == scales[-1] and len(scales) > 1 else ""))
            if per.attention is not None
            else f"no attention @ {s:g}",
            f"effective weight @ {s:g}" if s in result.weights else f"no weights @ {s:g}",
        ]
    fig = make_subplots(
        rows=len(scales),
        cols=4,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.06 / max(1, len(scales) - 1) if len(scales) > 1 else 0.0,
    )
    for r, s in enumerate(scales, start=1):
        per = result.per_scale[s]
        fig.add_trace(
            image_trace(_scaled_input(result.image, s), panel_side, name=f"input {s:g}"), r, 1
        )
        own = to_numpy(per.logits.argmax(0)).astype(np.int64)
        fig.add_trace(
            image_trace(labels.colorize(own), panel_side, smooth=False, name=f"pred {s:g}"), r, 2
        )
        if per.attention is not None:
            fig.add_trace(
                heatmap_trace(
                    to_numpy(per.attention), heatmap_side, name=f"attention {s:g}", label="a"
                ),
                r,
                3,
            )
        if s in result.weights:
            fig.add_trace(
                heatmap_trace(
                    to_numpy(result.weights[s]), heatmap_side, name=f"weight {s:g}", label="w"
                ),
                r,
                4,
            )
    style_image_axes(fig)
    h, w = result.size
    row_height = max(160, min(320, int(1100 / 4 * h / max(w, 1)) + 50))
    fig.update_layout(
        coloraxis={
            "colorscale": ATTENTION_SCALE,
            "cmin": 0.0,
            "cmax": 1.0,
            "colorbar": {"title": "0..1"},
        },
        height=row_height * len(scales) + 80,
        title=f"per-scale outputs ({result.method}); cascade ({format_cascade(result.scales, ', ')})",
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        showlegend=False,
        plot_bgcolor="white",
    )
    return fig


def attention_scales(scales: Iterable[float]) -> tuple[float, ...]:
    """Returns the ascending scales of a cascade whose attention the hierarchical merge uses:
    every scale but the largest (the chain starts from the largest scale's prediction, so its
    attention never weighs anything). A one-scale cascade uses no attention: ``()``."""
    ordered = tuple(sorted({float(s) for s in scales}))
    return ordered[:-1]


@functools.lru_cache(maxsize=4)
def _colour_lut(colorscale: str) -> np.ndarray:
    """Returns the ``(256, 3)`` uint8 lookup table of a plotly colour scale."""
    samples = plotly.colors.sample_colorscale(colorscale, [i / 255 for i in range(256)])
    lut = np.asarray([plotly.colors.unlabel_rgb(c) for c in samples]).round().astype(np.uint8)
    lut.flags.writeable = False
    return lut


def heatmap_rgb(
    values: torch.Tensor | np.ndarray,
    vmin: float = 0.0,
    vmax: float = 1.0,
    colorscale: str = ATTENTION_SCALE,
) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 colour image of an ``(H, W)`` map on a fixed colour
    scale: ``vmin`` (and below) is the scale's first colour, ``vmax`` (and above) its last;
    NaN counts as ``vmin``. The default is the figures' attention scale over [0, 1]."""
    arr = to_numpy(values).astype(np.float32)
    if arr.ndim != 2:
        raise ValueError(f"a heatmap needs an (H, W) map, got shape {arr.shape}")
    if not vmax > vmin:
        raise ValueError(f"vmax must be above vmin, got {vmin} and {vmax}")
    unit = np.clip((arr - vmin) / (vmax - vmin), 0.0, 1.0)
    index = np.nan_to_num(unit * 255.0, nan=0.0).round().astype(np.uint8)
    return _colour_lut(colorscale)[index]


@dataclass(frozen=True)
class ScalePanels:
    """One scale's images for a gallery, all ``uint8`` RGB; attention and weight share one
    colour scale (:data:`ATTENTION_SCALE`, 0 to 1).

    Attributes:
        scale: the scale.
        prediction: ``(h, w, 3)`` that scale's own prediction in the label colours.
        attention: ``(h, w, 3)`` its attention map, ``None`` without an attention head.
        weight: ``(H, W, 3)`` its effective weight in the merge, ``None`` when the result has
            no weights.
        mean_attention: mean of the attention map, ``None`` without one.
        mean_weight: mean effective weight (the share of the merge), ``None`` without one.
        attention_used: whether the hierarchical merge uses this scale's attention (not for
            the largest scale of the cascade, see :func:`attention_scales`).
    """

    scale: float
    prediction: np.ndarray
    attention: np.ndarray | None
    weight: np.ndarray | None
    mean_attention: float | None
    mean_weight: float | None
    attention_used: bool


def scale_panels(result: InferenceResult) -> list[ScalePanels]:
    """Returns the :class:`ScalePanels` of every scale of ``result``, ascending by scale (the
    images a static gallery shows; :func:`scale_grid_figure` is the interactive form)."""
    used = set(attention_scales(result.per_scale))
    panels = []
    for s in sorted(result.per_scale):
        per = result.per_scale[s]
        att = per.attention
        weight = result.weights.get(s)
        panels.append(
            ScalePanels(
                scale=s,
                prediction=result.labels.colorize(per.logits.argmax(0)),
                attention=None if att is None else heatmap_rgb(att),
                weight=None if weight is None else heatmap_rgb(weight),
                mean_attention=None if att is None else float(att.float().mean()),
                mean_weight=None if weight is None else float(weight.float().mean()),
                attention_used=att is not None and s in used,
            )
        )
    return panels


# --------------------------------------------------------------------------- method comparison


def error_map(pred: np.ndarray, gt: np.ndarray, ignore_index: int) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 error map: correct, wrong and ignored pixels in
    :data:`ERROR_COLORS`."""
    out = np.empty((*gt.shape, 3), dtype=np.uint8)
    ignore = gt == ignore_index
    correct = (pred == gt) & ~ignore
    out[correct] = ERROR_COLORS["correct"]
    out[~correct & ~ignore] = ERROR_COLORS["wrong"]
    out[ignore] = ERROR_COLORS["ignore"]
    return out


def method_comparison_figure(
    comparison: MethodComparison, *, columns: int = 4, panel_side: int = PANEL_SIDE
) -> go.Figure:
    """Returns one panel per merged method (title with mIoU when scored), wrapped into rows of
    ``columns``; with ground truth, each prediction has its error map (correct / wrong / ignore)
    below it. Skipped methods are listed in the title."""
    methods = list(comparison.methods)
    if not methods:
        raise ValueError("the comparison holds no merged method to draw")
    labels = comparison.labels
    columns = max(1, min(columns, len(methods)))
    block_rows = math.ceil(len(methods) / columns)
    per_block = 2 if comparison.gt is not None else 1
    titles: list[str] = []
    for b in range(block_rows):
        chunk = methods[b * columns : (b + 1) * columns]
        for method in chunk:
            score = ""
            if comparison.scores is not None:
                miou = comparison.scores[method].miou
                score = f" (mIoU {100 * miou:.1f})" if not math.isnan(miou) else ""
            titles.append(method + score)
        titles += [""] * (columns - len(chunk))
        if per_block == 2:
            titles += [f"errors: {m}" for m in chunk] + [""] * (columns - len(chunk))
    fig = make_subplots(
        rows=block_rows * per_block,
        cols=columns,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.05 if block_rows * per_block > 1 else 0.0,
    )
    gt = comparison.gt
    present: list[int] = []
    for i, method in enumerate(methods):
        row = (i // columns) * per_block + 1
        col = i % columns + 1
        pred = to_numpy(comparison.results[method].pred).astype(np.int64)
        present = sorted(set(present) | set(classes_present(labels, pred)))
        fig.add_trace(
            image_trace(labels.colorize(pred), panel_side, smooth=False, name=method), row, col
        )
        if gt is not None:
            errors = error_map(pred, gt, labels.ignore_index)
            fig.add_trace(
                image_trace(errors, panel_side, smooth=False, name=f"errors {method}"), row + 1, col
            )
    for c in present:
        fig.add_trace(legend_marker(labels.names[c], _rgb(labels.colors[c]), group="classes"))
    if gt is not None:
        for name, color in ERROR_COLORS.items():
            fig.add_trace(legend_marker(name, _rgb(color), group="errors"))
    style_image_axes(fig)
    h, w = comparison.base.size
    row_height = max(140, min(320, int(1100 / columns * h / max(w, 1)) + 40))
    title = "merge methods on cascade (" + format_cascade(comparison.base.scales, ", ") + ")"
    if comparison.skipped:
        title += (
            "<br><sub>skipped: "
            + "; ".join(f"{m}: {why}" for m, why in comparison.skipped.items())
            + "</sub>"
        )
    fig.update_layout(
        title=title,
        height=row_height * block_rows * per_block + 100,
        margin={"l": 10, "r": 10, "t": 120 if comparison.skipped else 70, "b": 10},
        plot_bgcolor="white",
    )
    return fig


def iou_bars_figure(comparison: MethodComparison) -> go.Figure:
    """Returns per-class IoU (%) as grouped bars, one group per class present in ground truth or
    any prediction and one bar per method (its mIoU in the legend).

    Raises:
        ValueError: the comparison has no ground truth (nothing to score against).
    """
    if comparison.scores is None or comparison.gt is None:
        raise ValueError("per-class IoU needs a ground-truth mask; upload one to score the methods")
    labels = comparison.labels
    present = np.zeros(labels.num_classes, dtype=bool)
    for scores in comparison.scores.values():
        present |= scores.present
    ids = [c for c in range(labels.num_classes) if present[c]]
    names = [labels.names[c] for c in ids]
    fig = go.Figure()
    for i, method in enumerate(comparison.methods):
        scores = comparison.scores[method]
        values = [100.0 * float(scores.iou[c]) if scores.present[c] else None for c in ids]
        fig.add_trace(
            go.Bar(
                x=names,
                y=values,
                name=f"{method} (mIoU {100 * scores.miou:.1f})",
                marker_color=METHOD_COLORS[i % len(METHOD_COLORS)],
                hovertemplate="%{x}: %{y:.1f}%<extra>" + method + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title="per-class IoU against ground truth",
        yaxis={"title": "IoU (%)", "range": [0, 100]},
        xaxis={"title": "class"},
        legend_title_text="method",
        margin={"l": 50, "r": 10, "t": 50, "b": 60},
    )
    return fig


# --------------------------------------------------------------------------- cost


def cost_figure(cost: CascadeCost) -> go.Figure:
    """Returns two stacked bars, GFLOPs and seconds, with one segment per scale.

    Scales served from the cache are hatched and named "(cached)"; their seconds are those of
    the original pass (no time was spent on them now, which the title's total says).
    """
    if not cost.per_scale:
        raise ValueError("the cost holds no scale")
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("GFLOPs", "seconds"), horizontal_spacing=0.15
    )
    palette = METHOD_COLORS
    for i, c in enumerate(cost.per_scale):
        name = f"scale {c.scale:g} ({c.input_size[1]} x {c.input_size[0]})" + (
            " (cached)" if c.cached else ""
        )
        marker = {"color": palette[i % len(palette)], "pattern": {"shape": "/" if c.cached else ""}}
        fig.add_trace(
            go.Bar(
                x=["GFLOPs"],
                y=[c.gflops],
                name=name,
                legendgroup=name,
                marker=marker,
                text=[f"{c.gflops:.2f}"],
                textposition="inside",
                hovertemplate=f"{name}<br>%{{y:.3f}} GFLOPs<extra></extra>",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Bar(
                x=["seconds"], y=[c.seconds], name=name, legendgroup=name, marker=marker,
                showlegend=False, text=[f"{c.seconds:.3f}" + (" (cached)" if c.cached else "")],
                textposition="inside",
                hovertemplate=f"{name}<br>%{{y:.3f}} s" + (" when computed; 0 s now" if c.cached else "")
                + "<extra></extra>",
            ),
            1,
            2,
        )  # fmt: skip
    fig.update_layout(
        barmode="stack",
        title=(
            f"cascade cost: {cost.gflops:.2f} GFLOPs, {cost.seconds:.3f} s now"
            + (f" ({len(cost.cached_scales)} scale(s) cached)" if cost.cached_scales else "")
        ),
        legend_title_text="scale",
        margin={"l": 50, "r": 10, "t": 60, "b": 40},
        height=420,
    )
    fig.update_yaxes(title_text="GFLOPs", row=1, col=1)
    fig.update_yaxes(title_text="seconds", row=1, col=2)
    return fig


# --------------------------------------------------------------------------- Pareto


#: The x axes of :func:`pareto_figure`: SweepRow attribute -> axis title.
PARETO_AXES = {"gflops": "GFLOPs per image", "seconds": "seconds per image"}


def pareto_front(rows: Sequence[SweepRow], x: str = "gflops") -> list[SweepRow]:
    """Returns the rows no other row beats: none has at most their GFLOPs (or seconds, with
    ``x="seconds"``) and a higher score.

    Rows without a score (n/a) are ignored; the result is sorted by ``x``.
    """
    scored = [r for r in rows if not math.isnan(r.miou) and not math.isnan(getattr(r, x))]
    scored.sort(key=lambda r: (getattr(r, x), -r.miou))
    front: list[SweepRow] = []
    best = -math.inf
    for row in scored:
        if row.miou > best:
            front.append(row)
            best = row.miou
    return front


def _pareto_group(row: SweepRow) -> str:
    """Returns the legend entry of a row: its method family (flip rows apart), gated rows per
    criterion."""
    family = row.method.split(":")[0] + (" + flip" if row.flip else "")
    return f"{family} gated by {row.gate_by or 'bound'}" if row.gate else family


def _pareto_text(row: SweepRow) -> str:
    """Returns the hover label of a row: cascade and method, with gate and flip."""
    return row_label(row.cascade, row.label)


def pareto_figure(table: SweepTable, x: str = "gflops") -> go.Figure:
    """Returns score (mIoU %, or agreement with the full cascade per ``table.reference``) against
    GFLOPs per image (``x="seconds"``: seconds per image) for every cascade and method of
    ``table``, gated rows as their own points per criterion (DESIGN 1.8), the Pareto frontier
    drawn as a line through its highlighted points.

    Raises:
        ValueError: no row of the table has a score, or an unknown ``x``.
    """
    from analysis.sweep import REFERENCE_GT

    if x not in PARETO_AXES:
        raise ValueError(f"x must be one of {', '.join(PARETO_AXES)}, got {x!r}")
    unit = "GFLOPs" if x == "gflops" else "s"

    scored = [r for r in table.rows if not math.isnan(r.miou)]
    if not scored:
        raise ValueError("the sweep has no scored row to plot")
    y_title = (
        "mIoU (%)" if table.reference == REFERENCE_GT else "agreement with full cascade (mIoU %)"
    )
    fig = go.Figure()
    groups: dict[str, list[SweepRow]] = {}  # legend entry -> rows; every single:<s> is "single"
    for row in scored:
        groups.setdefault(_pareto_group(row), []).append(row)
    scored = [r for r in scored if not math.isnan(getattr(r, x))]
    for i, (method, rows) in enumerate(groups.items()):
        fig.add_trace(
            go.Scatter(
                x=[getattr(r, x) for r in rows],
                y=[100.0 * r.miou for r in rows],
                mode="markers",
                name=method,
                marker={
                    "color": METHOD_COLORS[i % len(METHOD_COLORS)],
                    "size": 9,
                    "opacity": 0.8,
                    "symbol": "diamond" if rows[0].gate else "circle",
                },
                text=[_pareto_text(r) for r in rows],
                hovertemplate=f"%{{text}}<br>%{{x:.2f}} {unit}<br>%{{y:.2f}}%<extra></extra>",
            )
        )
    front = pareto_front(scored, x)
    fig.add_trace(
        go.Scatter(
            x=[getattr(r, x) for r in front],
            y=[100.0 * r.miou for r in front],
            mode="lines+markers",
            name="Pareto frontier",
            line={"color": "black", "width": 2, "shape": "hv"},
            marker={"symbol": "circle-open", "size": 16, "color": "black", "line": {"width": 2}},
            text=[_pareto_text(r) for r in front],
            hovertemplate=f"frontier: %{{text}}<br>%{{x:.2f}} {unit}<br>%{{y:.2f}}%<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"accuracy vs compute over {table.num_images} image(s), scored against {table.reference}",
        xaxis={"title": PARETO_AXES[x]},
        yaxis={"title": y_title},
        legend_title_text="method",
        margin={"l": 60, "r": 10, "t": 50, "b": 50},
    )
    return fig
