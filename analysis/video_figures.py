"""Figures and tables of a video run: the timeline and the flicker table.

:func:`timeline_figure` draws, against time, the share of pixels each scale decides (stacked,
in the deciding-scale video's colours), each method's flicker (raw solid, motion-compensated
dotted), GFLOPs per frame and, with masks, mIoU per frame. :func:`flicker_rows` is the table.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures import METHOD_COLORS, heatmap_rgb
from analysis.temporal import FlickerRow, FrameStats, method_label
from analysis.video_outputs import KeptFrame, scale_colours
from hmsa_core.labels import LabelSet


def _rgb(c: object) -> str:
    r, g, b = (int(v) for v in c)  # type: ignore[attr-defined]
    return f"rgb({r},{g},{b})"


def timeline_figure(
    stats: list[FrameStats], scales: tuple[float, ...], methods: tuple[str, ...]
) -> go.Figure:
    """Returns the timeline of a run: rows for scale shares, flicker, GFLOPs and (when any
    frame had a mask) mIoU, one point per processed frame at its time in seconds."""
    has_miou = any(s.miou for s in stats)
    titles = ["share of pixels each scale decides", "flicker (dotted: motion-compensated)"]
    titles += ["GFLOPs per frame"] + (["mIoU per frame"] if has_miou else [])
    fig = make_subplots(
        rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.07
    )
    t = [s.time for s in stats]
    for colour, scale in zip(scale_colours(len(scales)), scales):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=[100 * s.scale_share.get(scale, 0.0) for s in stats],
                name=f"scale {scale:g} decides",
                stackgroup="share",
                line={"color": _rgb(colour), "width": 0.5},
                legendgroup="share",
                hovertemplate=f"scale {scale:g}: %{{y:.1f}}% at %{{x:.2f}} s<extra></extra>",
            ),
            row=1,
            col=1,
        )
    for k, method in enumerate(methods):
        colour = METHOD_COLORS[k % len(METHOD_COLORS)]
        label = method_label(method)
        for key, dash, suffix in (("flicker", "solid", ""), ("flicker_mc", "dot", " (mc)")):
            values = [getattr(s, key).get(method) for s in stats]
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=[None if v is None else 100 * v for v in values],
                    name=f"{label}{suffix}",
                    line={"color": colour, "dash": dash},
                    legendgroup=method,
                    showlegend=key == "flicker",
                    hovertemplate=f"{label}{suffix}: %{{y:.2f}}%<extra></extra>",
                ),
                row=2,
                col=1,
            )
        if has_miou:
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=[None if s.miou.get(method) is None else 100 * s.miou[method] for s in stats],
                    name=label,
                    line={"color": colour},
                    legendgroup=method,
                    showlegend=False,
                    hovertemplate=f"{label}: mIoU %{{y:.1f}}%<extra></extra>",
                ),
                row=4,
                col=1,
            )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=[s.gflops for s in stats],
            name="GFLOPs",
            line={"color": "#444"},
            showlegend=False,
            hovertemplate="%{y:.2f} GFLOPs<extra></extra>",
        ),
        row=3,
        col=1,
    )
    fig.update_yaxes(title_text="%", row=1, col=1, range=[0, 100])
    fig.update_yaxes(title_text="%", row=2, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="GFLOPs", row=3, col=1, rangemode="tozero")
    if has_miou:
        fig.update_yaxes(title_text="%", row=4, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(titles), col=1)
    fig.update_layout(height=230 * len(titles) + 60, margin={"l": 50, "r": 10, "t": 40, "b": 40})
    return fig


def flicker_rows(table: list[FlickerRow]) -> list[dict[str, object]]:
    """Returns the flicker table as rows for a data frame: method, flicker %,
    motion-compensated flicker %, mean mIoU % (``None`` where not measured), rounded."""

    def pct(v: float | None, digits: int) -> float | None:
        return None if v is None else round(100 * v, digits)

    return [
        {
            "method": r.label,
            "flicker %": pct(r.flicker, 2),
            "motion-compensated flicker %": pct(r.flicker_mc, 2),
            "mean mIoU %": pct(r.miou, 1),
        }
        for r in table
    ]


def kept_frame_panels(
    kept: KeptFrame, labels: LabelSet
) -> list[tuple[float, np.ndarray, np.ndarray | None, np.ndarray]]:
    """Returns per scale ``(scale, prediction RGB, attention RGB or None, weight RGB)``, each
    ``(h, w, 3)`` uint8, from a kept frame: predictions in the label colours, attention and
    weights on the weight-map colour scale over [0, 1]."""
    panels = []
    for i, scale in enumerate(kept.scales):
        attention = kept.attention[i]
        panels.append(
            (
                scale,
                labels.colorize(kept.scale_pred[i]),
                None if attention is None else heatmap_rgb(attention),
                heatmap_rgb(kept.weights[i]),
            )
        )
    return panels
