"""Notebook display of results: one-line summaries, small HTML with inline PNG thumbnails, and
the plotly figures of the analysis layer found through a plugin registry.

Every function here is pure: it reads an :class:`~hmsa_core.inference.InferenceResult`,
:class:`~hmsa_core.cost.CascadeCost` or :class:`~hmsa_core.merge.MergeResult` and returns a
string (or a figure). The HTML needs no JavaScript: images are base64 PNG ``<img>`` tags whose
long side is at most a few hundred pixels, so a 1024 x 2048 result stays well under 300 KB.

Figures live in the ``analysis`` package, which sits above this one; ``hmsa_core`` never
imports it. Instead a package registers figure builders under the entry-point group
:data:`FIGURE_GROUP` (this project's ``pyproject.toml`` registers ``analysis.result_figures``),
and :func:`result_figure` looks them up by name.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.colors
import torch
from PIL import Image

if TYPE_CHECKING:
    from hmsa_core.cost import CascadeCost, ScaleCost
    from hmsa_core.inference import InferenceResult
    from hmsa_core.merge import MergeResult

#: Entry-point group of figure builders: name -> ``builder(result, **options) -> Figure``.
FIGURE_GROUP = "hmsa_core.figures"
OVERLAY_SIDE = 512  # long side of the overlay thumbnail
THUMB_SIDE = 192  # long side of each per-scale thumbnail
HEATMAP_LEVELS = 64  # colour levels of a heatmap thumbnail (fewer levels, smaller PNGs)
OVERLAY_OPACITY = 0.5

#: Colour scale of heatmaps: plotly's, as the analysis figures draw attention with it.
HEATMAP_SCALE = "Viridis"
#: Heatmap palette: index ``i < HEATMAP_LEVELS`` is the colour of ``i / (HEATMAP_LEVELS - 1)``
#: on :data:`HEATMAP_SCALE` (sampled from plotly), the rest black.
HEATMAP_LUT = np.zeros((256, 3), dtype=np.uint8)
HEATMAP_LUT[:HEATMAP_LEVELS] = np.asarray(
    [
        plotly.colors.unlabel_rgb(c)
        for c in plotly.colors.sample_colorscale(
            HEATMAP_SCALE, list(np.linspace(0.0, 1.0, HEATMAP_LEVELS)), colortype="rgb"
        )
    ]
).round()

_STYLE = (
    "<style>.hmsa-display{font-family:sans-serif;font-size:12px}"
    ".hmsa-display table{border-collapse:collapse;margin:4px 0}"
    ".hmsa-display td,.hmsa-display th{padding:2px 6px;border:1px solid #ddd;text-align:right}"
    ".hmsa-display th{background:#f4f4f4;text-align:center}.hmsa-display img{display:block}"
    ".hmsa-display .sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;"
    "border:1px solid #999}</style>"
)


# --------------------------------------------------------------------------- formatting


def format_scales(scales: Iterable[float]) -> str:
    """Returns a cascade as ``"(0.5, 1, 2)"``."""
    return "(" + ", ".join(f"{float(s):g}" for s in scales) + ")"


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _thumb_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Returns the ``(h, w)`` of ``size`` shrunk (never enlarged) to a long side of ``max_side``."""
    h, w = int(size[0]), int(size[1])
    factor = min(1.0, max_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def _png_uri(img: Image.Image) -> str:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_data_uri(rgb: np.ndarray) -> str:
    """Returns a ``data:image/png;base64,...`` URI of an ``(H, W, 3)`` uint8 image."""
    return _png_uri(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)))


def indexed_png_data_uri(ids: np.ndarray, palette: np.ndarray) -> str:
    """Returns a PNG data URI of an ``(H, W)`` uint8 index map drawn with a ``(256, 3)`` uint8
    palette (an indexed PNG: a third of the bytes of the RGB image)."""
    img = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8), mode="P")
    img.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    return _png_uri(img)


def _img(uri: str, size: tuple[int, int], title: str) -> str:
    h, w = size
    return f'<img src="{uri}" width="{w}" height="{h}" title="{_esc(title)}" alt="{_esc(title)}">'


def _presample(x: torch.Tensor, max_side: int) -> torch.Tensor:
    """Returns ``x`` (``(..., H, W)``) strided down to at least twice ``max_side`` on its long
    side, so that the area average after it reads a few pixels per thumbnail pixel, not all."""
    step = max(1, max(int(x.shape[-2]), int(x.shape[-1])) // (2 * max_side))
    return x[..., ::step, ::step]


def heatmap_indices(values: torch.Tensor, max_side: int = THUMB_SIDE) -> np.ndarray:
    """Returns the ``(h, w)`` uint8 colour indices into :data:`HEATMAP_LUT` (0 for 0 up to
    ``HEATMAP_LEVELS - 1`` for 1; NaN as 0) of an ``(H, W)`` map, averaged down to a long side
    of at most ``max_side``."""
    size = _thumb_size((int(values.shape[-2]), int(values.shape[-1])), max_side)
    sampled = _presample(values.detach(), max_side).float().nan_to_num(0.0)
    small = torch.nn.functional.interpolate(sampled[None, None], size=size, mode="area")[0, 0]
    return (small.clamp(0, 1) * (HEATMAP_LEVELS - 1)).round().to(torch.uint8).cpu().numpy()


def class_indices(logits: torch.Tensor, max_side: int = THUMB_SIDE) -> np.ndarray:
    """Returns the ``(h, w)`` class ids of ``(C, H, W)`` ``logits`` at thumbnail size: the
    arg-max of the logits averaged down to a long side of at most ``max_side``."""
    size = _thumb_size((int(logits.shape[-2]), int(logits.shape[-1])), max_side)
    sampled = _presample(logits.detach(), max_side).float()
    small = torch.nn.functional.interpolate(sampled[None], size=size, mode="area")
    return small[0].argmax(0).to(torch.uint8).cpu().numpy()


def overlay_thumbnail(
    result: InferenceResult, max_side: int = OVERLAY_SIDE, opacity: float = OVERLAY_OPACITY
) -> np.ndarray:
    """Returns the ``(h, w, 3)`` uint8 input with the colourised prediction blended in, both
    box-filtered down to a long side of at most ``max_side``."""
    h, w = _thumb_size(result.size, max_side)
    rgb = Image.fromarray(np.ascontiguousarray(result.image, dtype=np.uint8))
    colours = Image.fromarray(result.labels.colorize(_presample(result.pred, max_side)))
    rgb, colours = (im.resize((w, h), Image.Resampling.BOX) for im in (rgb, colours))
    return np.asarray(Image.blend(rgb, colours, opacity))


def overlay_data_uri(rgb: np.ndarray) -> str:
    """Returns the overlay as an indexed PNG data URI (256 colours, fast octree), the one image of
    the display with photo content: about a third of the bytes of the RGB PNG."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return _png_uri(img.quantize(colors=256, method=Image.Quantize.FASTOCTREE))


# --------------------------------------------------------------------------- one-line reprs


def result_summary(result: InferenceResult) -> str:
    """Returns the one-line ``repr`` of an inference result."""
    h, w = result.size
    name = result.model_name or "model"
    return (
        f"InferenceResult(model={name!r}, scales={format_scales(result.scales)}, "
        f"method={result.method!r}, size={w}x{h}, classes={result.labels.num_classes}, "
        f"gflops={result.cost.gflops:.2f}, seconds={result.cost.seconds:.3f}"
        + (f", gate={result.cost.gate_by} {result.cost.gate:g}" if result.cost.gate_by else "")
        + ")"
    )


def cost_summary(cost: CascadeCost) -> str:
    """Returns the one-line ``repr`` of a cascade cost."""
    scales = format_scales(c.scale for c in cost.per_scale)
    cached = f", cached={format_scales(cost.cached_scales)}" if cost.cached_scales else ""
    return (
        f"CascadeCost(scales={scales}, gflops={cost.gflops:.2f}, seconds={cost.seconds:.3f}, "
        f"peak={_mib(cost.peak_bytes)}{cached})"
    )


def merge_summary(merged: MergeResult) -> str:
    """Returns the one-line ``repr`` of a merge result."""
    b, c, h, w = (int(v) for v in merged.logits.shape)
    return (
        f"MergeResult(method={merged.method!r}, scales={format_scales(merged.scales)}, "
        f"batch={b}, classes={c}, size={w}x{h}, aux={merged.aux_logits is not None})"
    )


# --------------------------------------------------------------------------- HTML


def cost_table_html(cost: CascadeCost) -> str:
    """Returns an HTML table with one row per scale: scale, input size, GFLOPs, seconds, whether
    it came from the cache, and the precision it ran in; a total row last. When attention gating
    ran, a "computed" column gives the share of each pass that ran and a "gate" column the
    criterion and threshold of the gated passes (DESIGN 1.8; approximate ones say so)."""
    gated = any(c.computed_fraction < 1 or c.gate_by for c in cost.per_scale)
    extra = "<th>computed</th><th>gate</th>" if gated else ""
    rows = [
        "<tr><th>scale</th><th>input size</th><th>GFLOPs</th><th>seconds</th>"
        f"<th>cached</th><th>precision</th>{extra}</tr>"
    ]
    for c in cost.per_scale:
        h, w = c.input_size
        share = f"<td>{100 * c.computed_fraction:.0f}%</td><td>{_esc(gate_label(c))}</td>"
        share = share if gated else ""
        rows.append(
            f"<tr><td>{c.scale:g}</td><td>{w} x {h}</td><td>{c.gflops:.2f}</td>"
            f"<td>{c.seconds:.3f}</td><td>{'yes' if c.cached else 'no'}</td>"
            f"<td>{_esc(c.precision)}</td>{share}</tr>"
        )
    saved = f"<td>{cost.gflops_saved:.2f} GFLOPs saved</td>" if gated else ""
    rows.append(
        f"<tr><th>total</th><td></td><th>{cost.gflops:.2f}</th><th>{cost.seconds:.3f}</th>"
        f"<td>{len(cost.cached_scales)}</td><td>peak {_mib(cost.peak_bytes)}</td>{saved}</tr>"
    )
    return "<table>" + "".join(rows) + "</table>"


def gate_label(cost: ScaleCost) -> str:
    """Returns how a pass was gated, e.g. ``"attention 0.3 (approximate)"``, ``"bound 0.05"``,
    or ``""`` for a pass that was not gated."""
    if not cost.gate_by:
        return ""
    note = " (approximate)" if cost.gate_by != "bound" else ""
    return f"{cost.gate_by} {cost.gate:g}{note}"


def cost_html(cost: CascadeCost) -> str:
    """Returns the HTML display of a :class:`~hmsa_core.cost.CascadeCost`."""
    return (
        f'{_STYLE}<div class="hmsa-display"><b>{_esc(cost_summary(cost))}</b>'
        f"{cost_table_html(cost)}</div>"
    )


def merge_html(merged: MergeResult) -> str:
    """Returns the HTML display of a :class:`~hmsa_core.merge.MergeResult`: its summary and
    each scale's mean weight in the merge."""
    rows = ["<tr><th>scale</th><th>mean weight</th></tr>"]
    for s in merged.scales:
        weight = merged.weights.get(s)
        share = "" if weight is None else f"{float(weight.detach().float().mean()):.3f}"
        rows.append(f"<tr><td>{s:g}</td><td>{share}</td></tr>")
    return (
        f'{_STYLE}<div class="hmsa-display"><b>{_esc(merge_summary(merged))}</b>'
        f"<table>{''.join(rows)}</table></div>"
    )


def _legend_html(result: InferenceResult) -> str:
    pred = result.pred.detach().flatten()
    valid = pred[(pred >= 0) & (pred < result.labels.num_classes)]
    counts = torch.bincount(valid, minlength=result.labels.num_classes)  # unique() sorts: slower
    ids = torch.nonzero(counts).flatten().tolist()
    parts = []
    for i in ids:
        if 0 <= i < result.labels.num_classes:
            r, g, b = result.labels.colors[i]
            parts.append(
                f'<span class="sw" style="background:rgb({r},{g},{b})"></span>'
                f"{_esc(result.labels.names[i])}"
            )
    return "<div>" + "".join(parts) + "</div>"


def _heatmap_img(values: torch.Tensor, max_side: int, title: str) -> str:
    ids = heatmap_indices(values, max_side)
    return _img(indexed_png_data_uri(ids, HEATMAP_LUT), ids.shape, title)


def _confidence_img(logits: torch.Tensor, max_side: int, title: str) -> tuple[str, float]:
    """Returns the ``<img>`` of the top softmax probability of ``(C, H, W)`` logits (strided to
    about twice the thumbnail first) and its mean."""
    from hmsa_core.confidence import confidence_maps

    top = confidence_maps(_presample(logits.detach(), max_side)).top_prob
    return _heatmap_img(top, max_side, title), float(top.mean())


def thumb_side_for(num_scales: int, max_side: int = THUMB_SIDE) -> int:
    """Returns the long side of the per-scale thumbnails: ``max_side`` up to 4 scales, shrinking
    beyond so that the display's size stays bounded (never below 64 px)."""
    return max(64, max_side * 4 // max(4, num_scales))


def _scale_grid_html(result: InferenceResult, max_side: int) -> str:
    scales = sorted(result.per_scale)
    thumb_side = thumb_side_for(len(scales), max_side)
    head = "<tr><th></th>" + "".join(
        f"<th>scale {s:g}<br>{result.per_scale[s].cost.input_size[1]} x "
        f"{result.per_scale[s].cost.input_size[0]}</th>"
        for s in scales
    )
    rows = [head + "</tr>"]
    pred_cells, att_cells, weight_cells, conf_cells = [], [], [], []
    top = scales[-1] if len(scales) > 1 else None  # the chain starts there: attention unused
    for s in scales:
        per = result.per_scale[s]
        ids = class_indices(per.logits, thumb_side)
        pred_uri = indexed_png_data_uri(ids, result.labels.palette)
        pred_cells.append(f"<td>{_img(pred_uri, ids.shape, f'{s:g} prediction')}</td>")
        conf, mean_conf = _confidence_img(per.logits, thumb_side, f"{s:g} confidence")
        conf_cells.append(f"<td>{conf}mean {mean_conf:.2f}</td>")
        att = per.attention
        att_cells.append(
            "<td>no attention head</td>"
            if att is None
            else f"<td>{_heatmap_img(att, thumb_side, f'{s:g} attention')}"
            + (
                "not used (largest scale)"
                if s == top
                else f"mean {float(att.detach().float().mean()):.2f}"
            )
            + "</td>"
        )
        weight = result.weights.get(s)
        weight_cells.append(
            "<td>no weights (return_attn=False)</td>"
            if weight is None
            else f"<td>{_heatmap_img(weight, thumb_side, f'{s:g} effective weight')}"
            f"share {float(weight.detach().float().mean()):.2f}</td>"
        )
    rows.append("<tr><th>prediction</th>" + "".join(pred_cells) + "</tr>")
    rows.append("<tr><th>attention</th>" + "".join(att_cells) + "</tr>")
    rows.append("<tr><th>effective weight</th>" + "".join(weight_cells) + "</tr>")
    rows.append("<tr><th>confidence</th>" + "".join(conf_cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def result_html(
    result: InferenceResult, *, overlay_side: int = OVERLAY_SIDE, thumb_side: int = THUMB_SIDE
) -> str:
    """Returns the HTML display of an inference result: its summary, the overlay, each scale's
    prediction, attention and effective weight as PNG thumbnails (viridis, 0 to 1; smaller
    beyond 4 scales, see :func:`thumb_side_for`), the classes present, and the cost table. No
    JavaScript; about 150 KB for a 1024 x 2048 result of 4 scales."""
    thumb = overlay_thumbnail(result, overlay_side)
    overlay = _img(overlay_data_uri(thumb), thumb.shape[:2], "prediction over the input")
    conf, mean_conf = _confidence_img(result.logits, thumb_side, "merged confidence")
    return (
        f'{_STYLE}<div class="hmsa-display"><b>{_esc(result_summary(result))}</b>'
        f"<div>{overlay}</div>{_legend_html(result)}"
        f"<div>merged confidence (top softmax probability, mean {mean_conf:.2f}):{conf}</div>"
        f"{_scale_grid_html(result, thumb_side)}"
        f"{cost_table_html(result.cost)}"
        + (f"<div>{_esc(result.gate_note)}</div>" if result.gate_note else "")
        + "<div>attention, effective weight and confidence: 0 (dark) to 1 (yellow); "
        "<code>result.figure(kind)</code> gives the interactive figures.</div></div>"
    )


# --------------------------------------------------------------------------- figure plugins


#: Builder of one figure: ``builder(result, **options)`` returns a plotly ``Figure``.
FigureBuilder = Callable[..., Any]


def figure_builders() -> dict[str, FigureBuilder]:
    """Returns figure kind -> builder, from the :data:`FIGURE_GROUP` entry points (loaded on use).

    Raises:
        ValueError: no package registers figures (the analysis package is not installed).
    """
    found = {ep.name: ep for ep in entry_points(group=FIGURE_GROUP)}
    if not found:
        raise ValueError(
            "no figure builders are installed: result.figure needs this project's analysis "
            "package; install it with `pip install -e .` from the repository root"
        )
    return {name: ep.load for name, ep in sorted(found.items())}


def figure_kinds() -> tuple[str, ...]:
    """Returns the figure kinds the installed plugins provide (empty when none is installed)."""
    return tuple(sorted({ep.name for ep in entry_points(group=FIGURE_GROUP)}))


def result_figure(result: InferenceResult, kind: str, **options: Any) -> Any:
    """Returns the plotly figure ``kind`` of ``result`` built by its registered plugin.

    Raises:
        ValueError: an unknown kind (the message lists the known ones), no plugin installed, or
            what the builder refuses (e.g. ``"iou"`` without a ground-truth mask).
    """
    loaders = figure_builders()
    if kind not in loaders:
        raise ValueError(f"unknown figure kind {kind!r}; use one of {', '.join(loaders)}")
    try:
        builder = loaders[kind]()
    except ImportError as exc:
        raise ValueError(
            f"the {kind!r} figure's plugin could not be imported ({exc}); "
            "reinstall the project with `pip install -e .`"
        ) from exc
    return builder(result, **options)
