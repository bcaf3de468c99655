"""Model against model on the main page: the displayed result beside another model's result
on the same image and cascade, with predictions, effective-weight maps, per-class IoU and cost.

Each compared model keeps, per session, the per-scale outputs it computed for the current
image (like :mod:`app.explorer_parts.state` does for the main model): a cascade or method
change, or coming back to a model compared before, re-merges them without a forward pass.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import hmsa_core
from analysis.metrics import SegmentationScores, score_prediction
from app import common
from app.explorer_parts import state
from hmsa_core.inference import InferenceResult
from hmsa_core.models import MultiScaleSegmenter

#: Session key: model key -> (image key, result holding every scale computed for that image).
BASES = state.HELD_BASES
#: Compared models kept per session (the oldest is dropped first).
MAX_BASES = 3


@dataclass(frozen=True)
class Side:
    """One side of the comparison.

    Attributes:
        name: the model's menu name.
        result: its result on the image (cascade and method of this side).
        scores: its scores against the ground truth, or ``None`` (no mask, or another label
            set than the mask's).
        passes: forward passes this side ran now (0 when every scale was stored).
    """

    name: str
    result: InferenceResult
    scores: SegmentationScores | None
    passes: int


def side_result(
    session: MutableMapping[str, Any],
    model_key: str,
    model: MultiScaleSegmenter,
    image_key: str,
    image: np.ndarray,
    scales: tuple[float, ...],
    method: str,
    precision: str = "auto",
) -> tuple[InferenceResult, int]:
    """Returns ``(result, passes)``: ``model``'s result of ``scales`` merged with ``method`` on
    ``image`` (``(H, W, 3)`` uint8), and how many forward passes it ran. Scales this session
    already holds for the model and image are re-used (re-merged, or extended by the missing
    scales only); the main page's stored scales count too. Passes are added to the session's
    forward-pass counter. ``precision`` is the main page's (``"auto"`` or ``"fp32"``); a held
    scale that ran in another precision is run again.

    Raises:
        ValueError: a bad cascade, or a method the model cannot merge.
    """
    bases: dict[str, tuple[str, InferenceResult]] = session.setdefault(BASES, {})
    main_id = session.get(state.BASE_ID)
    if main_id is not None and session.get(state.BASE) is not None:
        _keep(bases, main_id[0], main_id[1], session[state.BASE], only_more=True)
    held = bases.get(model_key)
    base = held[1] if held is not None and held[0] == image_key else None
    ran = [0]

    def counting(scale: float, index: int, total: int, cached: bool) -> None:
        if not cached:
            ran[0] += 1
            session[state.FORWARD_PASSES] = state.forward_passes(session) + 1

    wanted = tuple(sorted(set(scales) | (set(base.per_scale) if base is not None else set())))
    fresh = hmsa_core.extend(
        base, image, wanted, model, method="mean", progress=counting, precision=precision
    )
    _keep(bases, model_key, image_key, fresh)
    return fresh.remerge(method, scales, model=model), ran[0]


def _keep(
    bases: dict[str, tuple[str, InferenceResult]],
    model_key: str,
    image_key: str,
    result: InferenceResult,
    only_more: bool = False,
) -> None:
    """Holds ``result`` as the model's outputs for the image, dropping the oldest model beyond
    :data:`MAX_BASES`. With ``only_more`` (the main page's outputs, held so that they survive
    a model switch) nothing changes when as many scales of the image are held already."""
    held = bases.get(model_key)
    same_image = held is not None and held[0] == image_key
    if (
        only_more
        and held is not None
        and same_image
        and held[1].per_scale.keys() >= result.per_scale.keys()
    ):
        return
    bases.pop(model_key, None)
    bases[model_key] = (image_key, result)
    while len(bases) > MAX_BASES:
        bases.pop(next(iter(bases)))


def scores_of(
    result: InferenceResult, gt: np.ndarray | None, gt_names: tuple[str, ...]
) -> SegmentationScores | None:
    """Returns the scores of ``result`` against ``gt`` (``(H, W)`` class ids of the label set
    named ``gt_names``), or ``None`` without ``gt`` or when the model's classes differ."""
    if gt is None or result.labels.names != gt_names:
        return None
    return score_prediction(result.pred, gt, result.labels.num_classes)


def iou_frame(left: Side, right: Side) -> pd.DataFrame:
    """Returns class x (left IoU %, right IoU %, right - left) for classes present on either
    side, then the mIoU row (needs both sides' scores)."""
    assert left.scores is not None and right.scores is not None
    names = left.result.labels.names
    rows = []
    for c, name in enumerate(names):
        if not (left.scores.present[c] or right.scores.present[c]):
            continue
        a, b = float(left.scores.iou[c]), float(right.scores.iou[c])
        rows.append([name, _pct(a), _pct(b), _pct(b - a)])
    rows.append(
        [
            "mIoU",
            _pct(left.scores.miou),
            _pct(right.scores.miou),
            _pct(right.scores.miou - left.scores.miou),
        ]
    )
    return pd.DataFrame(rows, columns=["class", left.name, right.name, "difference"])


def _pct(value: float) -> float | None:
    return None if np.isnan(value) else round(100.0 * value, 2)


def _cost_line(side: Side) -> str:
    cost = side.result.cost
    cached = len(cost.cached_scales)
    computed = [f"{c.scale:g}: {c.seconds:.2f} s" for c in cost.per_scale if not c.cached]
    ran = f"computed for this view: {', '.join(computed)}" if computed else "no forward pass"
    return (
        f"{cost.gflops:.2f} GFLOPs for the cascade · {cached} of {len(cost.per_scale)} "
        f"scale(s) reused from stored outputs · {ran}"
    )


def _draw_side(side: Side) -> None:
    from analysis.figures import heatmap_rgb

    result = side.result
    st.markdown(f"**{side.name}** · {result.method} ({common.format_cascade(result.scales)})")
    st.image(result.labels.colorize(result.pred), caption="prediction", width="stretch")
    cols = st.columns(2)
    cols[0].metric("Compute", common.format_flops(result.cost.gflops))
    if side.scores is not None:
        cols[1].metric("mIoU", f"{100 * side.scores.miou:.2f}%")
    st.caption(_cost_line(side))
    if result.weights:
        scales = sorted(result.weights)
        images = [heatmap_rgb(result.weights[s]) for s in scales]
        st.image(
            images,
            caption=[f"effective weight @ {s:g}" for s in scales],
            width=max(80, 480 // len(scales)),
        )


def compare_view(ctx: Any) -> None:
    """The displayed result beside another model's on the same image and cascade."""
    entries = [e for e in common.list_models() if e.name != ctx.entry.name and not e.error]
    if not entries:
        st.info("Only one model is available: add a checkpoint to HMSA_MODELS_DIR to compare.")
        return
    names = [e.name for e in entries]
    cols = st.columns(2)
    other_name = cols[0].selectbox("Compare with", names, key="compare_model")
    entry = entries[names.index(other_name)]
    other = common.get_model(entry)
    options = common.method_options(other, ctx.result.scales)
    method = cols[1].selectbox("Its merge", options, key=f"compare_method_{other_name}")
    image = ctx.result.image
    rgb = image if isinstance(image, np.ndarray) else np.asarray(image)
    image_key = common.image_key(rgb)
    precision = getattr(ctx.session.get(state.REQUEST), "precision", "auto")
    result, passes = side_result(
        ctx.session,
        common.model_key(entry),
        other,
        image_key,
        rgb,
        ctx.result.scales,
        method,
        precision,
    )
    names_gt = ctx.model.labels.names
    left = Side(ctx.entry.name, ctx.result, scores_of(ctx.result, ctx.gt, names_gt), 0)
    right = Side(other_name, result, scores_of(result, ctx.gt, names_gt), passes)
    if result.labels.names != names_gt:
        st.info(f"{other_name} predicts other classes than {ctx.entry.name}: no IoU comparison.")
    sides = st.columns(2)
    for column, side in zip(sides, (left, right)):
        with column:
            _draw_side(side)
    if left.scores is not None and right.scores is not None:
        st.markdown("**Per-class IoU (%)**")
        st.dataframe(iou_frame(left, right), hide_index=True, key="table_compare_iou")
    elif ctx.gt is None:
        st.caption("No ground-truth mask: the per-class IoU needs one.")
