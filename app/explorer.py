"""HMSA Explorer, the main screen: ``streamlit run app/explorer.py``.

Pick a model, an image (a bundled sample or an upload, optionally with its class-id mask) and a
scale cascade; see the merged prediction, every scale's prediction and attention, merge
methods compared, scores, compute cost, scale preferences, a Pareto chart over all sub-cascades
and captum attributions. A cascade or method change whose scales are already computed is
re-merged from the stored per-scale outputs without any forward pass.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `streamlit run app/explorer.py` puts only app/ on the path
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

import hmsa_core  # noqa: E402
from app import common  # noqa: E402
from app.explorer_parts import sharing, sidebar, state, views  # noqa: E402
from app.explorer_parts.sidebar import Choices  # noqa: E402
from hmsa_core.limits import limits_from_env  # noqa: E402

#: Forward-pass GFLOPs above which even automatic mode waits for the Run button
#: (env ``HMSA_AUTO_RUN_GFLOPS`` overrides it).
AUTO_RUN_MAX_GFLOPS = 200.0

ABOUT = """
**Hierarchical multi-scale attention (HMSA)** (Tao, Sapra and Catanzaro, 2020) runs one
segmentation network on the same image at several sizes. Small inputs see more context and
get large regions right; large inputs keep thin and small things. At every scale the network
also predicts an attention map: how much to trust *this* scale against everything merged from
the larger scales. Because that attention is relative between neighbouring scales, a model
trained on just the pair (0.5, 1.0) can be chained over any cascade at inference, such as
(0.25, 0.5, 1.0, 2.0).

This explorer keeps every scale's output, so changing the cascade or the merge method
re-merges what is already computed instead of running the network again.
"""


def _about(choices: Choices) -> None:
    with st.expander("About HMSA and this model"):
        st.markdown(ABOUT)
        if choices.entry is not None:
            st.markdown(
                f"**Loaded model:** `{choices.entry.name}`: {common.describe_model(choices.entry)}"
            )
            st.markdown(common.training_note(choices.entry))


def _estimate(choices: Choices, computed: set[float]) -> tuple[list[tuple[float, float]], float]:
    """Shows the expected compute of the cascade and of the passes still to run; returns
    ``(planned passes, GFLOPs still to compute)``: ``(scale, GFLOPs)`` of every pass in run
    order (:func:`app.common.planned_passes`, what the progress bar weighs)."""
    assert choices.model is not None and choices.image is not None
    options = hmsa_core.InferOptions(
        precision=choices.precision, flip=choices.flip, limits=limits_from_env()
    )
    cost = hmsa_core.estimate_cascade(
        choices.model, choices.image.size, choices.scales, options=options
    )
    passes = common.planned_passes(choices.model, choices.image.size, choices.scales, options)
    todo = [g for s, g in passes if s not in computed]
    cols = st.columns(4)
    cols[0].metric("Cascade", f"({common.format_cascade(choices.scales)})")
    cols[1].metric("Expected compute", common.format_flops(cost.gflops))
    cols[2].metric(
        "To compute now",
        common.format_flops(sum(todo)) if todo else "nothing (all cached)",
        help=f"{len(passes) - len(todo)} of {len(passes)} pass(es) already computed for this "
        "image" + (" (each scale and its mirrored pass)" if choices.flip else ""),
    )
    cols[3].metric(
        "Peak memory (est.)",
        f"{cost.peak_bytes / 2**20:,.0f} MB",
        help=f"largest pass, in {'/'.join(cost.precisions)}, tiled above HMSA_MAX_TILE_PIXELS; "
        "before gating skips anything",
    )
    return passes, sum(todo)


def _auto_run_limit() -> float:
    """Returns the GFLOPs automatic mode runs without asking (env ``HMSA_AUTO_RUN_GFLOPS``)."""
    raw = os.environ.get("HMSA_AUTO_RUN_GFLOPS", "")
    try:
        return float(raw) if raw else AUTO_RUN_MAX_GFLOPS
    except ValueError:
        return AUTO_RUN_MAX_GFLOPS


def _run(
    choices: Choices, request: state.RunRequest, passes: list[tuple[float, float]]
) -> state.RunOutcome:
    """Runs the request with a progress bar weighted by each pass's estimated FLOPs
    (``passes``: ``(scale, GFLOPs)`` of every planned pass); returns the outcome."""
    assert choices.model is not None and choices.image is not None
    if not state.needs_forward_pass(st.session_state, request, choices.model):
        return state.run(st.session_state, request, choices.model, choices.image.rgb)
    with st.status("Running the cascade...", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        done: list[float] = []

        def progress(scale: float, index: int, total: int, cached: bool) -> None:
            how = "from the cache" if cached else "computed"
            done.append(scale)
            share = common.flop_fraction(passes, done)
            bar.progress(share, text=f"scale {scale:g} {how} (pass {index + 1}/{total})")

        outcome = state.run(
            st.session_state, request, choices.model, choices.image.rgb, progress=progress
        )
        status.update(label="Cascade done", state="complete", expanded=False)
    return outcome


def _timings(outcome: state.RunOutcome) -> None:
    names = [
        f"{c.scale:g}" + (" mirrored" if c.flipped else "") for c in outcome.result.cost.per_scale
    ]
    parts = [
        f"{name}: cached" if c.cached else f"{name}: {c.seconds:.2f} s"
        for name, c in zip(names, outcome.result.cost.per_scale)
    ]
    parts.append("ran in " + "/".join(outcome.result.cost.precisions))
    how = {
        "infer": "forward passes",
        "remerge": "re-merged from stored scales, no forward pass",
    }[outcome.source]
    st.caption(f"Per-scale time ({how}): " + " · ".join(parts))


def main() -> None:
    """Draws the page."""
    st.set_page_config(page_title="HMSA Explorer", layout="wide")
    state.init(st.session_state)
    sharing.restore(st.session_state, views.TAB_NAMES, views.TAB_KEY)
    choices = sidebar.render()
    sharing.write(st.session_state, choices, views.TAB_KEY)
    st.title("HMSA Explorer")
    for notice in sharing.notices(st.session_state):
        st.warning(notice)
    _about(choices)
    for message in choices.errors:
        st.error(message)
    if not choices.ready:
        if not choices.errors:
            st.info("Choose an image in the sidebar (a bundled sample or an upload).")
        return
    assert choices.entry is not None and choices.model is not None and choices.image is not None
    request = state.RunRequest(
        model_key=common.model_key(choices.entry),
        image_key=common.image_key(choices.image.rgb),
        scales=choices.scales,
        method=choices.method,
        precision=choices.precision,
        gate=choices.gate,
        gate_by=choices.gate_by,
        flip=choices.flip,
    )
    computed = state.computed_scales_in(st.session_state, request, choices.model)
    try:
        passes, todo_gflops = _estimate(choices, computed)
        pending = state.needs_forward_pass(st.session_state, request, choices.model)
        limit = _auto_run_limit()
        heavy = todo_gflops > limit
        if pending and (heavy or not choices.auto_run) and not st.button("Run", type="primary"):
            why = (
                f"{todo_gflops:,.2f} GFLOPs to compute is over the {limit:,.2f} GFLOPs "
                "run automatically. "
                if heavy
                else ""
            )
            st.info(f"{why}Press Run to compute the new scales.")
            return
        outcome = _run(choices, request, passes)
    except ValueError as exc:
        st.error(str(exc))
        return
    _timings(outcome)
    ctx = views.ViewContext(
        result=outcome.result,
        model=choices.model,
        entry=choices.entry,
        gt=choices.gt,
        methods=choices.methods,
        serial=outcome.serial,
        session=st.session_state,
    )
    views.render(ctx)


main()
