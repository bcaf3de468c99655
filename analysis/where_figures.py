"""Plotly figures of a :class:`~analysis.where_report.WhereReport` (the front ends only call these).

Hovering a bin says how many objects or pixels it holds; a bin with fewer objects than the
report's ``min_objects`` is drawn hatched and pale with "n=3, too few", never hidden, and an
empty bin is marked "n=0, empty".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from analysis.where_report import WhereReport
from analysis.where_stats import BinnedStats
from hmsa_core.confidence import ConfidenceMaps

METRICS = {"recall": "object recall", "accuracy": "pixel accuracy", "miou": "mIoU"}
_SCALE_COLORS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725", "#f89540")


def _stats(report: WhereReport, by: str) -> BinnedStats:
    """Returns the binned stats ``by`` names (``size``, ``diameter`` or ``distance``)."""
    choice = {
        "size": report.size.by_size,
        "diameter": report.size.by_diameter,
        "distance": report.size.by_distance,
    }
    if by not in choice:
        raise ValueError(f"by must be one of {', '.join(choice)}, got {by!r}")
    stats = choice[by]
    if stats is None:
        raise ValueError("this report has no camera distances (SynthScapes data has them)")
    return stats


def _bin_labels(stats: BinnedStats) -> list[str]:
    """Returns one note per bin: ``""``, ``"n=3, too few"`` or ``"n=0, empty"``."""
    notes = []
    for n, ok in zip(stats.objects, stats.reliable):
        notes.append("n=0, empty" if n == 0 else ("" if ok else f"n={int(n)}, too few"))
    return notes


def _marker(stats: BinnedStats, color: str | None = None) -> dict:
    """Returns a bar marker: hatched and pale for bins with too few objects."""
    weak = ~stats.reliable
    return {
        "color": color,
        "opacity": [0.4 if w else 1.0 for w in weak],
        "pattern": {"shape": ["/" if w else "" for w in weak]},
    }


def _finite(values: np.ndarray) -> list[float]:
    return [0.0 if not np.isfinite(v) else float(v) for v in values]


def size_figure(report: WhereReport, by: str = "size", metric: str = "recall") -> go.Figure:
    """Returns grouped bars: ``metric`` (``recall``, ``accuracy`` or ``miou``) per bin (``by``:
    ``size``, ``diameter`` or ``distance``), one bar per method."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    stats = _stats(report, by)
    notes = _bin_labels(stats)
    custom = np.stack([stats.objects, stats.pixels], axis=1)
    fig = go.Figure()
    for m in report.methods:
        values = getattr(stats, metric)(m)
        fig.add_bar(
            name=m,
            x=list(stats.names),
            y=_finite(values),
            text=notes,
            textposition="outside",
            marker=_marker(stats),
            customdata=custom,
            hovertemplate=f"{m}<br>%{{x}}: %{{y:.3f}}<br>%{{customdata[0]:,}} objects, "
            "%{customdata[1]:,} pixels<br>%{text}<extra></extra>",
        )
    fig.update_layout(
        barmode="group",
        title=f"{METRICS[metric]} by object {by} ({report.num_images} image(s), objects from "
        f"{report.object_source})",
        xaxis={"title": f"object {by}", "type": "category"},
        yaxis={"title": METRICS[metric], "range": [0, 1.08]},
        legend={"title": "method"},
    )
    return fig


def trimap_figure(report: WhereReport, metric: str = "miou") -> go.Figure:
    """Returns one line per method: ``miou`` or ``accuracy`` within d px of a boundary."""
    b = report.boundary
    pixels = b.pixels()
    fig = go.Figure()
    for m in report.methods:
        values = b.miou(m) if metric == "miou" else b.accuracy(m)
        fig.add_scatter(
            name=m, x=list(b.widths), y=[None if not np.isfinite(v) else v for v in values],
            mode="lines+markers", customdata=pixels,
            hovertemplate=f"{m}<br>d <= %{{x}} px: %{{y:.3f}}<br>%{{customdata:,}} pixels"
            "<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        title=f"{'mIoU' if metric == 'miou' else 'pixel accuracy'} near boundaries (trimap)",
        xaxis={"title": "band width d (px)", "type": "log", "tickvals": list(b.widths)},
        yaxis={"title": "mIoU" if metric == "miou" else "pixel accuracy"},
        legend={"title": "method"},
    )
    return fig


def boundary_iou_figure(report: WhereReport) -> go.Figure:
    """Returns grouped bars of Boundary IoU per class (classes with a band), one per method."""
    b = report.boundary
    first = report.methods[0] if report.methods else None
    union = b.biou_union[first] if first else np.zeros(0)
    keep = [c for c in range(len(report.class_names)) if c < len(union) and union[c] > 0]
    names = [report.class_names[c] for c in keep]
    fig = go.Figure()
    for m in report.methods:
        v = b.boundary_iou(m)[keep]
        fig.add_bar(
            name=f"{m} (mean {b.mean_boundary_iou(m):.3f})", x=names, y=_finite(v),
            customdata=b.biou_union[m][keep],
            hovertemplate=f"{m}<br>%{{x}}: %{{y:.3f}}<br>%{{customdata:,}} pixels in either band"
            "<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        barmode="group",
        title=f"Boundary IoU per class (band {b.ratio:g} x image diagonal)",
        xaxis={"title": "class", "type": "category"},
        yaxis={"title": "Boundary IoU", "range": [0, 1]},
    )
    return fig


def _weight_method(report: WhereReport, method: str | None) -> str:
    methods = report.weight_methods
    if not methods:
        raise ValueError("no method with effective weights in this report (add 'hierarchical')")
    if method is None:
        return methods[0]
    if method not in methods:
        raise ValueError(f"method {method!r} has no weights here; use one of {', '.join(methods)}")
    return method


def weight_by_size_figure(
    report: WhereReport, method: str | None = None, by: str = "size"
) -> go.Figure:
    """Returns stacked bars: the mean effective weight of each scale over each bin's pixels."""
    method = _weight_method(report, method)
    stats = _stats(report, by)
    w = stats.mean_weight(method)
    notes = _bin_labels(stats)
    custom = np.stack([stats.objects, stats.pixels], axis=1)
    fig = go.Figure()
    for j, s in enumerate(report.scales):
        fig.add_bar(
            name=f"{s:g}", x=list(stats.names), y=_finite(w[:, j]), text=notes,
            marker=_marker(stats, _SCALE_COLORS[j % len(_SCALE_COLORS)]), customdata=custom,
            hovertemplate=f"scale {s:g}<br>%{{x}}: %{{y:.3f}}<br>%{{customdata[0]:,}} objects, "
            "%{customdata[1]:,} pixels<br>%{text}<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        barmode="stack",
        title=f"which scale decides objects by {by} ({method})",
        xaxis={"title": f"object {by}", "type": "category"},
        yaxis={"title": "mean effective weight", "range": [0, 1]},
        legend={"title": "scale"},
    )
    return fig


def weight_by_boundary_figure(report: WhereReport, method: str | None = None) -> go.Figure:
    """Returns one line per scale: mean effective weight against distance to a boundary."""
    method = _weight_method(report, method)
    b = report.boundary
    w = b.mean_weight(method)
    edges = list(b.distance_edges)
    x = [f"{e:g}" if i + 1 == len(edges) or edges[i + 1] - e == 1 else f"{e:g}-{edges[i + 1] - 1:g}"
         for i, e in enumerate(edges)]  # fmt: skip
    if x:
        x[-1] = f">= {edges[-1]:g}"
    fig = go.Figure()
    for j, s in enumerate(report.scales):
        fig.add_scatter(
            name=f"{s:g}", x=x, y=[None if not np.isfinite(v) else v for v in w[:, j]],
            mode="lines+markers", line={"color": _SCALE_COLORS[j % len(_SCALE_COLORS)]},
            customdata=b.distance_pixels,
            hovertemplate=f"scale {s:g}<br>d = %{{x}} px: %{{y:.3f}}<br>%{{customdata:,}} pixels"
            "<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        title=f"which scale decides pixels by distance to a boundary ({method})",
        xaxis={"title": "distance to the nearest boundary (px)", "type": "category"},
        yaxis={"title": "mean effective weight", "range": [0, 1]},
        legend={"title": "scale"},
    )
    return fig


def reliability_figure(report: WhereReport, methods: Sequence[str] | None = None) -> go.Figure:
    """Returns the reliability diagram: accuracy against mean confidence per bin, one line per
    method (ECE in the legend), and the diagonal of perfect calibration."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "grey"}
    )
    for m in methods or report.methods:
        h = report.calibration.bins[m]
        conf, acc = h.mean_confidence(), h.accuracy()
        keep = h.counts > 0
        fig.add_scatter(
            name=f"{m} (ECE {100 * h.ece():.1f}%)", x=conf[keep], y=acc[keep],
            mode="lines+markers", customdata=h.counts[keep],
            hovertemplate=f"{m}<br>confidence %{{x:.3f}}: accuracy %{{y:.3f}}<br>"
            "%{customdata:,} pixels<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        title="reliability diagram (top softmax probability, 15 bins)",
        xaxis={"title": "mean confidence", "range": [0, 1]},
        yaxis={"title": "accuracy", "range": [0, 1]},
    )
    return fig


def accuracy_confidence_figure(
    report: WhereReport, methods: Sequence[str] | None = None
) -> go.Figure:
    """Returns accuracy of the pixels at or above each confidence threshold, per method."""
    fig = go.Figure()
    for m in methods or report.methods:
        h = report.calibration.bins[m]
        acc, share = h.accuracy_above()
        fig.add_scatter(
            name=m, x=h.edges[:-1], y=[None if not np.isfinite(v) else v for v in acc],
            mode="lines+markers", customdata=share,
            hovertemplate=f"{m}<br>confidence >= %{{x:.2f}}: accuracy %{{y:.3f}}<br>"
            "%{customdata:.1%} of pixels<extra></extra>",
        )  # fmt: skip
    fig.update_layout(
        title="accuracy against confidence threshold",
        xaxis={"title": "confidence threshold", "range": [0, 1]},
        yaxis={"title": "accuracy of pixels at or above it"},
    )
    return fig


def confidence_map_figure(
    maps: ConfidenceMaps, kind: str = "top_prob", title: str = ""
) -> go.Figure:
    """Returns a heatmap of one confidence map (``top_prob``, ``margin`` or ``entropy``)."""
    data = maps.as_dict()
    if kind not in data:
        raise ValueError(f"kind must be one of {', '.join(data)}, got {kind!r}")
    z = data[kind].numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z, colorscale="Viridis" if kind != "entropy" else "Magma",
            zmin=0.0, zmax=float(max(z.max(initial=0.0), 1e-6)) if kind == "entropy" else 1.0,
            hovertemplate=f"x %{{x}}, y %{{y}}: {kind} %{{z:.3f}}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(title=title or kind, yaxis={"autorange": "reversed", "scaleanchor": "x"})
    return fig


def where_figures(report: WhereReport) -> dict[str, go.Figure]:
    """Returns every figure that applies to ``report``, by name."""
    figs = {
        "size_recall": size_figure(report, "size", "recall"),
        "diameter_recall": size_figure(report, "diameter", "recall"),
        "trimap_miou": trimap_figure(report, "miou"),
        "trimap_accuracy": trimap_figure(report, "accuracy"),
        "boundary_iou": boundary_iou_figure(report),
        "reliability": reliability_figure(report),
        "accuracy_confidence": accuracy_confidence_figure(report),
    }
    if report.size.by_distance is not None:
        figs["distance_recall"] = size_figure(report, "distance", "recall")
    if report.weight_methods:
        figs["weight_by_size"] = weight_by_size_figure(report)
        figs["weight_by_boundary"] = weight_by_boundary_figure(report)
        if report.size.by_distance is not None:
            figs["weight_by_distance"] = weight_by_size_figure(report, by="distance")
    return figs
