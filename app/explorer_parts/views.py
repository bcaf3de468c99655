"""The explorer's result tabs. Each view only wires :mod:`analysis` products into widgets:
figures come from :mod:`analysis.figures` (and friends), numbers from :mod:`analysis`.

Products that take more than a merge (the method comparison, the subset sweep, the scale
preference) are made once per displayed result through :func:`state.derived`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from analysis.compare import MethodComparison, compare_methods
from analysis.scale_stats import ScalePreference
from app.common import format_cascade
from app.explorer_parts import state
from hmsa_core.discovery import ModelEntry
from hmsa_core.inference import InferenceResult
from hmsa_core.models import MultiScaleSegmenter

TAB_NAMES: tuple[str, ...] = (
    "Overlay",
    "Per-scale",
    "Methods",
    "IoU",
    "Cost",
    "Scale preference",
    "Where scales win",
    "Pareto",
    "Attribution",
    "Downloads",
    "Model vs model",
)
#: Session key of the open tab's label.
TAB_KEY = "result_tab"
#: Session key of the methods drawn on the Pareto chart.
PARETO_METHODS_KEY = "pareto_methods"
#: Largest sweep (sub-cascades x methods) the Pareto tab runs without a button press.
AUTO_SWEEP_MERGES = 21


@dataclass(frozen=True)
class ViewContext:
    """Everything the views draw from.

    Attributes:
        result: the displayed result (cascade and method the user chose).
        model: the model that produced it.
        entry: the model's discovery entry (name, label set, kind).
        gt: ``(H, W)`` int64 ground truth at the result's size, or ``None``.
        methods: merge methods to compare (``"single"`` = every single scale).
        serial: the result's serial number (keys cached products).
        session: the session state.
    """

    result: InferenceResult
    model: MultiScaleSegmenter
    entry: ModelEntry
    gt: np.ndarray | None
    methods: tuple[str, ...]
    serial: int
    session: MutableMapping[str, Any]


def _chart(fig: Any, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


def _guarded(render: Callable[[ViewContext], None], ctx: ViewContext) -> None:
    """Runs one view; a ``ValueError`` becomes an in-page error and the other views still draw."""
    try:
        render(ctx)
    except ValueError as exc:
        st.error(str(exc))


def comparison_of(ctx: ViewContext) -> MethodComparison:
    """Returns the method comparison of the displayed result (made once per result)."""
    methods = ctx.methods or (ctx.result.method,)
    key = ("comparison", methods, ctx.gt is not None)
    return state.derived(
        ctx.session, key, lambda: compare_methods(ctx.result, methods, gt=ctx.gt, model=ctx.model)
    )


def _sweep_key(methods: tuple[str, ...], ctx: ViewContext) -> tuple:
    return ("sweep", methods, ctx.gt is not None)


def sweep_of(ctx: ViewContext, methods: tuple[str, ...]) -> Any:
    """Returns the :class:`analysis.sweep.SweepTable` of every subset of the cascade merged with
    ``methods`` (made once per result and methods)."""
    from analysis.sweep import subset_rows

    return state.derived(
        ctx.session,
        _sweep_key(methods, ctx),
        lambda: subset_rows(ctx.result, methods=methods, gt=ctx.gt, model=ctx.model),
    )


def stored_sweep(ctx: ViewContext) -> Any:
    """Returns the sweep the Pareto tab last made for this result, or ``None``."""
    methods = ctx.session.get(PARETO_METHODS_KEY)
    if not methods:
        return None
    return ctx.session.get(state.DERIVED, {}).get(_sweep_key(tuple(methods), ctx))


def preference_of(ctx: ViewContext) -> ScalePreference:
    """Returns the per-class scale preference of the displayed result (made once per result)."""
    from analysis.scale_stats import scale_preference

    key = ("preference", ctx.gt is not None)
    return state.derived(ctx.session, key, lambda: scale_preference(ctx.result, mask=ctx.gt))


# --------------------------------------------------------------------------- views


def overlay_view(ctx: ViewContext) -> None:
    """The merged prediction blended over the input, with a class legend."""
    from analysis.figures import overlay_figure

    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="overlay_opacity")
    st.caption(
        f"{ctx.result.method} merge of ({format_cascade(ctx.result.scales)}) · "
        "hover a pixel for each scale's vote"
    )
    _chart(overlay_figure(ctx.result, opacity=opacity), "fig_overlay")


def scales_view(ctx: ViewContext) -> None:
    """Per scale: the input, its own prediction, raw attention and effective weight."""
    from analysis.figures import scale_grid_figure

    st.caption(
        "Raw attention a_s is what each scale's head predicts; the effective weight is how "
        "much that scale decided each pixel after the hierarchical chain (weights sum to 1)."
    )
    _chart(scale_grid_figure(ctx.result), "fig_scales")
    skipped_view(ctx)


def skipped_view(ctx: ViewContext) -> None:
    """Each gated scale's input with the tiles attention gating skipped tinted red."""
    from analysis.skipped_tiles import skipped_panels

    panels = skipped_panels(ctx.result)
    if not panels:
        return
    st.markdown("**Attention gating: skipped tiles per scale**")
    cols = st.columns(len(panels))
    for col, (image, caption) in zip(cols, panels):
        col.image(image, caption=caption, width="stretch")


def methods_view(ctx: ViewContext) -> None:
    """Every chosen merge method side by side, with error maps when the mask is known."""
    from analysis.figures import method_comparison_figure

    comparison = comparison_of(ctx)
    for method, reason in comparison.skipped.items():
        st.info(f"{method}: {reason}")
    if not comparison.methods:
        st.warning("None of the chosen methods can merge this cascade.")
        return
    if comparison.scores is not None:
        st.dataframe(_score_table(comparison), hide_index=True, key="table_method_scores")
    _chart(method_comparison_figure(comparison), "fig_methods")


def _score_table(comparison: MethodComparison) -> pd.DataFrame:
    assert comparison.scores is not None
    rows = []
    for method, scores in comparison.scores.items():
        info = scores.as_dict(comparison.labels)
        rows.append(
            {
                "method": method,
                "mIoU (%)": _pct(info["miou"]),
                "pixel accuracy (%)": _pct(info["pixel_accuracy"]),
            }
        )
    return pd.DataFrame(rows)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def iou_table(comparison: MethodComparison) -> pd.DataFrame:
    """Returns classes x methods IoU (%) for the classes present, then the mIoU row (from
    :func:`analysis.exports.iou_table`; needs ground truth)."""
    from analysis.exports import iou_table as table_of

    if comparison.scores is None:
        raise ValueError("per-class IoU needs a ground-truth mask")
    headers, rows = table_of(comparison, percent=True, digits=2)
    return pd.DataFrame(rows, columns=headers)


def iou_view(ctx: ViewContext) -> None:
    """Per-class IoU table and bars for each method (only with a mask)."""
    from analysis.figures import iou_bars_figure

    if ctx.gt is None:
        st.info(
            "No ground-truth mask for this image: pick a bundled sample (masks included) or "
            "upload a class-id mask in the sidebar to score the methods."
        )
        return
    comparison = comparison_of(ctx)
    if not comparison.methods:
        st.warning("None of the chosen methods can merge this cascade.")
        return
    st.markdown("**Per-class IoU (%)**")
    st.dataframe(iou_table(comparison), hide_index=True, key="table_iou")
    _chart(iou_bars_figure(comparison), "fig_iou")


def cost_view(ctx: ViewContext) -> None:
    """FLOPs and seconds per scale; which scales came from the cache."""
    from analysis.exports import cost_rows
    from analysis.figures import cost_figure

    cost = ctx.result.cost
    cached = len(cost.cached_scales)
    st.caption(
        f"{cost.gflops:.2f} GFLOPs in all; {cached} of {len(cost.per_scale)} scale(s) served "
        f"from the cache; {cost.seconds:.3f} s of forward passes spent now; ran in "
        f"{'/'.join(cost.precisions)}; {cost.gflops_saved:.2f} GFLOPs saved by gating."
        + (f" {ctx.result.gate_note}." if ctx.result.gate_note else "")
    )
    rows = pd.DataFrame(cost_rows(cost, total=True))
    rows["scale"] = rows["scale"].map(lambda s: s if isinstance(s, str) else f"{s:g}")
    st.dataframe(rows, hide_index=True, key="table_cost")
    _chart(cost_figure(cost), "fig_cost")


def preference_view(ctx: ViewContext) -> None:
    """Which scale each class leans on (from the effective weights)."""
    from analysis.scale_stats import scale_preference_figure

    if not ctx.result.weights:
        st.info("This result has no per-scale weights to summarise.")
        return
    pref = preference_of(ctx)
    _chart(scale_preference_figure(pref), "fig_preference")
    st.markdown(pref.to_markdown())


def pareto_view(ctx: ViewContext) -> None:
    """Score against GFLOPs for every subset of the computed scales (no forward pass).

    Each subset and method is one merge at full resolution; sweeps of more than
    :data:`AUTO_SWEEP_MERGES` merges wait for a button press.
    """
    from analysis.cascades import all_subsets
    from analysis.figures import pareto_figure

    options = [m for m in ctx.methods if m != "single"]
    if ctx.result.method not in options:
        options.insert(0, ctx.result.method)
    methods = tuple(
        st.multiselect(
            "Methods on the chart", options, default=[ctx.result.method], key=PARETO_METHODS_KEY
        )
    )
    if not methods:
        st.info("Pick at least one method.")
        return
    merges = len(all_subsets(ctx.result.scales)) * len(methods)
    known = _sweep_key(methods, ctx) in ctx.session.get(state.DERIVED, {})
    if (
        not known
        and merges > AUTO_SWEEP_MERGES
        and not st.button(f"Merge all {merges} sub-cascades", key="pareto_run")
    ):
        st.caption(
            f"{merges} merges from the stored scales (no forward pass); press the button to run them."
        )
        return
    with st.spinner(f"Merging {merges} sub-cascades..."):
        table = sweep_of(ctx, methods)
    if ctx.gt is None:
        st.caption(
            "No mask: each subset is scored by its agreement with the full cascade's "
            "hierarchical prediction."
        )
    _chart(pareto_figure(table), "fig_pareto")
    with st.expander("All subsets"):
        st.markdown(table.to_markdown())


@dataclass(frozen=True)
class AttributionChoices:
    """What the attribution view offers.

    Attributes:
        targets: ``("logits", "attention")``, or ``("logits",)`` when no attention is used.
        scales: the scales offered for the chosen target.
        note: why something is not offered (empty when everything is).
    """

    targets: tuple[str, ...]
    scales: tuple[float, ...]
    note: str = ""


def attribution_choices(
    scales: tuple[float, ...], has_attention: bool, target: str
) -> AttributionChoices:
    """Returns the :class:`AttributionChoices` for a cascade: ``"attention"`` only for a model
    with an attention head and a cascade of two or more scales; for it, only the scales whose
    attention the hierarchical merge uses (never the largest, see
    :func:`analysis.figures.attention_scales`)."""
    from analysis.figures import attention_scales

    used = attention_scales(scales) if has_attention else ()
    targets = ("logits", "attention") if used else ("logits",)
    if has_attention and not used:
        note = "A one-scale cascade uses no attention: only its logits can be explained."
        return AttributionChoices(targets, scales, note)
    if target == "attention" and used:
        note = (
            f"The hierarchical merge starts from the largest scale ({max(scales):g}) and never "
            "uses its attention, so that scale is not offered here."
        )
        return AttributionChoices(targets, used, note)
    return AttributionChoices(targets, scales)


def attribution_view(ctx: ViewContext) -> None:
    """Captum attribution of a class picked from the classes present, on a button press."""
    from analysis.attribution import attribute, attribution_figure

    labels = ctx.result.labels
    present = [int(c) for c in np.unique(ctx.result.pred.cpu().numpy()) if c < labels.num_classes]
    cols = st.columns(4)
    target_class = cols[0].selectbox(
        "Class", present, format_func=lambda c: labels.names[c], key="attr_class"
    )
    offered = attribution_choices(ctx.result.scales, ctx.model.has_attention, "logits")
    target = cols[2].selectbox("Explain", offered.targets, key="attr_target")
    offered = attribution_choices(ctx.result.scales, ctx.model.has_attention, target)
    scale = cols[1].selectbox(
        "Scale",
        offered.scales,
        index=len(offered.scales) // 2,
        format_func=lambda s: f"{s:g}",
        key=f"attr_scale_{target}",  # one per target: their options differ
        help=offered.note or None,
    )
    method = cols[3].selectbox("Method", ["integrated_gradients", "grad_cam"], key="attr_method")
    if offered.note:
        st.caption(offered.note)
    params = (ctx.serial, target_class, scale, target, method)
    if st.button("Compute attribution", key="attr_run"):
        bar = st.progress(0.0, text="attribution")

        def progress(fraction: float) -> None:
            done = min(1.0, max(0.0, fraction))
            bar.progress(done, text=f"attribution {100 * done:.0f}%")

        attr = attribute(
            ctx.model,
            ctx.result.image,
            scale=scale,
            target_class=target_class,
            target=target,
            method=method,
            max_side=384,
            progress=progress,
        )
        ctx.session["hmsa_attribution"] = (params, attr)
        bar.empty()
    stored = ctx.session.get("hmsa_attribution")
    if stored is not None and stored[0] == params:
        _chart(attribution_figure(stored[1], labels.names[target_class]), "fig_attribution")
    else:
        st.caption("Pick a class and press the button (a few seconds on CPU).")


def downloads_view(ctx: ViewContext) -> None:
    """The predicted mask, all arrays, the metrics and a self-contained HTML report."""
    from analysis.exports import arrays_npz_bytes, mask_png_bytes, metrics_json
    from analysis.report import report_html_bytes
    from app.explorer_parts.where_view import dataset_objects, stored_where, where_methods

    result = ctx.result
    comparison = comparison_of(ctx)
    stem = f"hmsa_{result.method.replace(':', '_')}_{'_'.join(f'{s:g}' for s in result.scales)}"
    cols = st.columns(4)
    cols[0].download_button(
        "Mask (PNG)",
        mask_png_bytes(result),
        f"{stem}_mask.png",
        "image/png",
        key="dl_mask",
        on_click="ignore",
    )
    cols[1].download_button(
        "Arrays (.npz)",
        lambda: arrays_npz_bytes(result),
        f"{stem}.npz",
        "application/octet-stream",
        key="dl_npz",
        on_click="ignore",
    )
    cols[2].download_button(
        "Metrics (JSON)",
        metrics_json(comparison),
        f"{stem}_metrics.json",
        "application/json",
        key="dl_json",
        on_click="ignore",
    )
    sweep = stored_sweep(ctx)  # included when the Pareto tab made one
    pref = preference_of(ctx) if result.weights else None
    gt, model = ctx.gt, ctx.model
    made = stored_where(ctx)  # the "Where scales win" tab's report, when it made one
    where_for = where_methods(ctx)
    instances, distances = dataset_objects(ctx)

    def html() -> bytes:  # made on click, in a thread of its own: touches no session state
        from analysis.where_scales import analyse_where

        where = made
        if where is None and gt is not None:
            where = analyse_where(
                result, gt, instances=instances, distances=distances, methods=where_for,
                model=model,
            )  # fmt: skip
        return report_html_bytes(
            result, comparison=comparison, sweep=sweep, preference=pref, where=where
        )

    cols[3].download_button(
        "Report (HTML)",
        html,
        f"{stem}_report.html",
        "text/html",
        key="dl_report",
        on_click="ignore",
    )


def where_view(ctx: ViewContext) -> None:
    """Size, boundary and calibration views and confidence maps of the displayed result (see
    :mod:`app.explorer_parts.where_view`)."""
    from app.explorer_parts.where_view import where_view as draw

    draw(ctx)


def models_view(ctx: ViewContext) -> None:
    """The displayed result beside another model's (see :mod:`app.explorer_parts.compare`)."""
    from app.explorer_parts.compare import compare_view

    compare_view(ctx)


VIEWS: tuple[Callable[[ViewContext], None], ...] = (
    overlay_view,
    scales_view,
    methods_view,
    iou_view,
    cost_view,
    preference_view,
    where_view,
    pareto_view,
    attribution_view,
    downloads_view,
    models_view,
)


def render(ctx: ViewContext) -> None:
    """Draws the tabs of the result; only the open tab's view runs (the tabs keep their
    selection across reruns under the session key :data:`TAB_KEY`)."""
    tabs = st.tabs(list(TAB_NAMES), key=TAB_KEY, on_change="rerun")
    for tab, view in zip(tabs, VIEWS):
        if tab.open:
            with tab:
                _guarded(view, ctx)
