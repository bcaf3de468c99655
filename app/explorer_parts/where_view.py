"""The explorer's "Where scales win" tab, and the where-report views the dataset page shares.

For the shown image it draws, with a ground-truth mask, the size view (object recall, accuracy
and IoU per size bin and the effective weight of every scale there), the boundary view (trimap
curves, Boundary IoU, weight against boundary distance) and the calibration view (ECE and the
reliability diagram); with or without a mask, the confidence maps of the merged result and of
every scale. Everything is computed from the held per-scale outputs
(:func:`analysis.where_scales.analyse_where` re-merges them), once per displayed result through
:func:`app.explorer_parts.state.derived`: changing the cascade or the method runs no forward pass.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import streamlit as st

from analysis.cascades import expand_methods
from app.explorer_parts import state

if TYPE_CHECKING:  # pragma: no cover - types only
    from analysis.where_report import WhereReport
    from app.explorer_parts.views import ViewContext

#: The tab's label (also its value in a shared link: ``?tab=Where+scales+win``).
TAB_NAME = "Where scales win"
#: What the tab says when the image has no ground-truth mask.
MASK_ADDS = (
    "No ground-truth mask for this image, so only the confidence maps are shown. A class-id "
    "mask (a bundled sample's, or an upload in the sidebar) adds: object recall, accuracy and "
    "IoU per object size (small / medium / large) for every merge method and single scale, "
    "with the effective weight of each scale on those objects; trimap mIoU within d pixels of "
    "a class boundary and Boundary IoU; and calibration (expected calibration error and the "
    "reliability diagram)."
)
#: The confidence maps offered, with their readable names.
CONFIDENCE_CHOICES = {"top_prob": "top probability", "margin": "top-2 margin", "entropy": "entropy"}


def _chart(fig: Any, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def where_methods(ctx: ViewContext) -> tuple[str, ...]:
    """Returns the methods the tab scores: the shown method first, then the compared methods
    (``"single"`` expanded to every scale of the cascade)."""
    chosen = expand_methods(ctx.result.scales, (ctx.result.method, *ctx.methods))
    return tuple(m for m in chosen if m)


def where_report_of(ctx: ViewContext) -> WhereReport:
    """Returns the where-report of the displayed result against its mask, made once per result
    and methods from the held per-scale outputs (no forward pass).

    Raises:
        ValueError: the result has no mask (``ctx.gt`` is ``None``) or a bad one.
    """
    from analysis.where_scales import analyse_where

    if ctx.gt is None:
        raise ValueError("the where-report needs a ground-truth mask")
    gt = ctx.gt
    instances, distances = dataset_objects(ctx)
    return state.derived(
        ctx.session,
        where_key(ctx),
        lambda: analyse_where(
            ctx.result, gt, instances=instances, distances=distances,
            methods=where_methods(ctx), model=ctx.model,
        ),
    )  # fmt: skip


def where_key(ctx: ViewContext) -> tuple:
    """Returns the :func:`state.derived` key of the where-report: the methods, the mask's
    digest (the mask can change without a new result) and whether instances are used."""
    gt = np.ascontiguousarray(ctx.gt)
    digest = hashlib.blake2b(gt.tobytes(), digest_size=16).hexdigest()
    return ("where", where_methods(ctx), digest, dataset_objects(ctx)[0] is not None)


def stored_where(ctx: ViewContext) -> WhereReport | None:
    """Returns the where-report the tab made for the displayed result and mask, or ``None``."""
    if ctx.gt is None:
        return None
    return ctx.session.get(state.DERIVED, {}).get(where_key(ctx))


def dataset_objects(ctx: ViewContext) -> tuple[np.ndarray | None, dict[int, float] | None]:
    """Returns ``(instances, camera distances)`` of the shown image when it is a dataset image
    opened from the dataset page with its own mask at its own size (SynthScapes has both,
    Cityscapes instances), else ``(None, None)``: objects are then the mask's connected
    components."""
    from app.explorer_parts import sharing

    opened = ctx.session.get(sharing.OPENED_IMAGE)
    if (
        opened is None
        or opened.instances is None
        or opened.mask is None
        or ctx.gt is None
        or opened.rgb.shape != ctx.result.image.shape
        or not np.array_equal(opened.rgb, ctx.result.image)
        or not np.array_equal(opened.mask, ctx.gt)
    ):
        return None, None
    return opened.instances, opened.distances


def where_view(ctx: ViewContext) -> None:
    """The tab: the where-report views with a mask (else what a mask would add), then the
    confidence maps."""
    if ctx.gt is None:
        st.info(MASK_ADDS)
    else:
        with st.spinner("Scoring every method by object size, boundary distance and confidence"):
            report = where_report_of(ctx)
        report_views(report, "where")
    confidence_view(ctx)


def confidence_view(ctx: ViewContext) -> None:
    """The confidence maps (top probability, margin, entropy) of the merged result and of every
    scale, from the held logits."""
    from analysis.where_views import confidence_grid_figure

    st.markdown("#### Confidence maps")
    kinds = st.multiselect(
        "Maps",
        list(CONFIDENCE_CHOICES),
        default=list(CONFIDENCE_CHOICES),
        format_func=CONFIDENCE_CHOICES.__getitem__,
        key="where_conf_kinds",
    )
    if not kinds:
        st.info("Pick at least one map.")
        return
    st.caption(
        "Per pixel, from the softmax of the merged logits (first row) and of each scale's own "
        "logits at its own size: the top class probability, its margin over the second class, "
        "and the entropy in nats (bright = uncertain)."
    )
    fig = state.derived(
        ctx.session,
        ("confidence_grid", tuple(kinds)),
        lambda: confidence_grid_figure(ctx.result, kinds),
    )
    _chart(fig, "fig_where_confidence")


# --------------------------------------------------------------------------- report views


def report_views(report: WhereReport, prefix: str) -> None:
    """Draws the size, boundary and calibration views of a where-report (one image's or a
    dataset run's); widget and chart keys start with ``prefix``."""
    st.caption(
        f"{report.num_images} image(s); objects from {report.object_source} "
        f"({'instance maps' if report.object_source.startswith('instances') else 'connected components of each class'})."
    )
    for note in report.notes:
        st.warning(note)
    _size_view(report, prefix)
    _boundary_view(report, prefix)
    _calibration_view(report, prefix)
    with st.expander("All tables"):
        st.markdown(report.to_markdown())


def _weight_method(report: WhereReport, prefix: str) -> str | None:
    """Returns the merge whose effective weights the weight charts show (picked by the user)."""
    options = list(report.weight_methods)
    if not options:
        return None
    return st.selectbox(
        "Effective weights of", options, key=f"{prefix}_weight_method",
        help="the merge methods that weigh the scales per pixel",
    )  # fmt: skip


def _size_view(report: WhereReport, prefix: str) -> None:
    from analysis.where_figures import size_figure, weight_by_size_figure

    st.markdown("#### Objects by size")
    st.caption(report.size.description)
    groups = ["size", "diameter"] + (["distance"] if report.size.by_distance is not None else [])
    cols = st.columns(3)
    by = cols[0].radio(
        "Group objects by", groups, horizontal=True, key=f"{prefix}_size_by",
        format_func=lambda g: {"size": "size bin", "diameter": "diameter (px)",
                               "distance": "camera distance (m)"}[g],
    )  # fmt: skip
    metrics = ["recall", "accuracy"] + (["miou"] if by != "diameter" else [])
    metric = cols[1].radio(
        "Score", metrics, horizontal=True, key=f"{prefix}_size_metric",
        format_func=lambda m: {"recall": "object recall", "accuracy": "pixel accuracy",
                               "miou": "IoU"}[m],
    )  # fmt: skip
    with cols[2]:
        method = _weight_method(report, prefix)
    left, right = st.columns(2)
    with left:
        _chart(size_figure(report, by=by, metric=metric), f"fig_{prefix}_size")
    with right:
        if method is None:
            st.info("No merge here weighs the scales per pixel (hierarchical, max or explicit).")
        else:
            _chart(weight_by_size_figure(report, method, by=by), f"fig_{prefix}_size_weight")


def _boundary_view(report: WhereReport, prefix: str) -> None:
    from analysis.where_figures import boundary_iou_figure, trimap_figure, weight_by_boundary_figure

    st.markdown("#### Near class boundaries")
    metric = st.radio(
        "Trimap score", ["miou", "accuracy"], horizontal=True, key=f"{prefix}_trimap_metric",
        format_func=lambda m: {"miou": "mIoU", "accuracy": "pixel accuracy"}[m],
    )  # fmt: skip
    left, right = st.columns(2)
    with left:
        _chart(trimap_figure(report, metric=metric), f"fig_{prefix}_trimap")
    with right:
        _chart(boundary_iou_figure(report), f"fig_{prefix}_boundary_iou")
    method = st.session_state.get(f"{prefix}_weight_method")
    if method not in report.weight_methods:
        method = report.weight_methods[0] if report.weight_methods else None
    if method is not None:
        _chart(weight_by_boundary_figure(report, method), f"fig_{prefix}_boundary_weight")


def _calibration_view(report: WhereReport, prefix: str) -> None:
    from analysis.where_figures import reliability_figure

    st.markdown("#### Calibration")
    rows = [
        {"method": m, "ECE (%)": _pct(report.calibration.ece(m))}
        for m in report.methods
        if m in report.calibration.bins
    ]
    left, right = st.columns([1, 2])
    with left:
        st.caption(
            "Expected calibration error: over 15 equal-width confidence bins, the pixel share "
            "times |accuracy - mean confidence| (lower is better calibrated)."
        )
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"table_{prefix}_ece")
    with right:
        _chart(reliability_figure(report), f"fig_{prefix}_reliability")


def _pct(value: float) -> float | None:
    return None if value != value else round(100.0 * float(value), 2)  # NaN -> None
