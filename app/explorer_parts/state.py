"""What the explorer keeps between reruns: the last inference and the products derived from it.

The session keeps a *base* :class:`~hmsa_core.InferenceResult` holding every scale computed so
far for the current model and image. A cascade or method change whose scales are all in the
base is served by :meth:`~hmsa_core.InferenceResult.remerge` (no forward pass); otherwise
:func:`hmsa_core.extend` runs the forward passes of the missing scales only (the
base's scales are reused even when :data:`hmsa_core.DEFAULT_SCALE_CACHE` has evicted them).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np

import hmsa_core
from hmsa_core.cost import CascadeCost
from hmsa_core.inference import InferenceResult, model_device
from hmsa_core.limits import InputLimits, limits_from_env
from hmsa_core.models import MultiScaleSegmenter
from hmsa_core.precision import resolve_precision

T = TypeVar("T")

#: Session-state keys this module owns.
BASE = "hmsa_base"
BASE_ID = "hmsa_base_id"
RESULT = "hmsa_result"
REQUEST = "hmsa_request"
SERIAL = "hmsa_result_serial"
DERIVED = "hmsa_derived"
FORWARD_PASSES = "hmsa_forward_passes"
LAST_SOURCE = "hmsa_last_source"
#: model key -> (image key, result): per-scale outputs of other models this session holds
#: (the model-against-model view keeps them; see :mod:`app.explorer_parts.compare`).
HELD_BASES = "hmsa_compare_bases"

#: ``(scale, index, total, cached)`` progress callback, as :func:`hmsa_core.infer` calls it.
Progress = Callable[[float, int, int, bool], None]
Source = Literal["infer", "remerge"]


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for: the inputs that decide the displayed result.

    Attributes:
        model_key: identity of the model weights (see :func:`app.common.model_key`).
        image_key: identity of the input pixels (see :func:`app.common.image_key`).
        scales: the cascade, ascending.
        method: the merge method shown.
        precision: the precision asked for (``"auto"`` or ``"fp32"``).
        gate: the attention-gating threshold (0: ungated).
        gate_by: the gate criterion of a gated request (DESIGN 1.8).
        flip: whether the passes also run on the mirrored image (the shown merge is then the
            mean of the plain and the mirrored merges).
    """

    model_key: str
    image_key: str
    scales: tuple[float, ...]
    method: str
    precision: str = "auto"
    gate: float = 0.0
    flip: bool = False
    gate_by: str = "bound"


@dataclass(frozen=True)
class RunOutcome:
    """The result to display and how it was obtained.

    Attributes:
        result: the merged result of the request.
        source: ``"infer"`` (forward passes may have run) or ``"remerge"`` (re-merged from the
            stored per-scale outputs, no pass), of the run that made the result.
        serial: increases whenever a new result is produced (keys derived products).
    """

    result: InferenceResult
    source: Source
    serial: int


def init(state: MutableMapping[str, Any]) -> None:
    """Sets this module's counters in a new session (existing values are kept)."""
    state.setdefault(FORWARD_PASSES, 0)


def forward_passes(state: MutableMapping[str, Any]) -> int:
    """Returns how many forward passes this session has run (cache hits excluded)."""
    return int(state.get(FORWARD_PASSES, 0))


def computed_scales(state: MutableMapping[str, Any], model_key: str, image_key: str) -> set[float]:
    """Returns the scales whose outputs are stored for this model and image."""
    base: InferenceResult | None = state.get(BASE)
    if base is None or state.get(BASE_ID) != (model_key, image_key):
        return set()
    return set(base.per_scale)


def current(state: MutableMapping[str, Any], request: RunRequest) -> RunOutcome | None:
    """Returns the stored outcome when ``request`` equals the last one, else ``None``."""
    if state.get(REQUEST) == request and state.get(RESULT) is not None:
        return RunOutcome(state[RESULT], state.get(LAST_SOURCE, "infer"), int(state.get(SERIAL, 0)))
    return None


def needs_forward_pass(
    state: MutableMapping[str, Any],
    request: RunRequest,
    model: MultiScaleSegmenter | None = None,
) -> bool:
    """Returns True when some scale of ``request`` has not been computed for its model and image
    (with ``model``: in the request's precision, and always for a gated request)."""
    if model is not None:
        done = computed_scales_in(state, request, model)
    else:
        done = computed_scales(state, request.model_key, request.image_key)
    return not set(request.scales) <= done


def _all_cached(cost: CascadeCost) -> CascadeCost:
    return CascadeCost(tuple(replace(c, cached=True) for c in cost.per_scale))


def _store(
    state: MutableMapping[str, Any], request: RunRequest, result: InferenceResult, source: Source
) -> RunOutcome:
    serial = int(state.get(SERIAL, 0)) + 1
    state[RESULT] = result
    state[REQUEST] = request
    state[SERIAL] = serial
    state[DERIVED] = {}
    state[LAST_SOURCE] = source
    return RunOutcome(result, source, serial)


def run(
    state: MutableMapping[str, Any],
    request: RunRequest,
    model: MultiScaleSegmenter,
    image: np.ndarray,
    *,
    progress: Progress | None = None,
    limits: InputLimits | None = None,
) -> RunOutcome:
    """Returns the outcome of ``request``: re-merged when every scale is stored, else inferred.

    A new inference runs on the union of the requested scales and those already stored for
    this model and image; only the scales not stored run a forward pass (the stored ones are
    reused, whether or not the global per-scale cache still holds them), so going back to an
    earlier, larger cascade never needs a pass.

    Args:
        state: the session state (a mutable mapping).
        request: what to show.
        model: the model ``request.model_key`` names.
        image: ``(H, W, 3)`` uint8 RGB that ``request.image_key`` names.
        progress: called after each scale with ``(scale, index, total, cached)``.
        limits: cascade and size limits (default: ``HMSA_*`` environment).

    Raises:
        ValueError: bad cascade, a method this model or cascade cannot merge, bad image.
    """
    init(state)
    same = current(state, request)
    if same is not None:
        return same
    if request.gate > 0:  # a gated cascade depends on all its scales: never re-merged
        return _run_gated(state, request, model, image, progress, limits)
    ident = (request.model_key, request.image_key)
    base: InferenceResult | None = state.get(BASE) if state.get(BASE_ID) == ident else None
    held = state.get(HELD_BASES, {}).get(request.model_key)
    if base is None and held is not None and held[0] == request.image_key:
        base = held[1]  # scales a model comparison computed for this model and image
    if base is not None and not _ran_in(base, request.precision, model):
        base = None  # stored passes of another precision are never shown for this one
    if base is not None and set(request.scales) <= _held(base, request.flip):
        merged = base.remerge(request.method, request.scales, model=model, flip=request.flip)
        return _store(state, request, replace(merged, cost=_all_cached(merged.cost)), "remerge")

    def counting(scale: float, index: int, total: int, cached: bool) -> None:
        if not cached:
            state[FORWARD_PASSES] = forward_passes(state) + 1
        if progress is not None:
            progress(scale, index, total, cached)

    limits = limits or limits_from_env()
    union = set(request.scales) | (set(base.per_scale) if base is not None else set())
    wanted = tuple(sorted(union)) if len(union) <= limits.max_scales else request.scales
    # Merge with "mean" (every model can), then the requested method from the outputs:
    # a method the model cannot merge fails after the passes are stored, not before.
    fresh = hmsa_core.extend(
        base,
        image,
        wanted,
        model,
        method="mean",
        progress=counting,
        limits=limits,
        precision=request.precision,
        flip=request.flip,
    )
    state[BASE] = fresh
    state[BASE_ID] = ident
    chosen = fresh.remerge(request.method, request.scales, model=model, flip=request.flip)
    return _store(state, request, chosen, "infer")


def _held(result: InferenceResult, flip: bool) -> set[float]:
    """Returns the scales of ``result`` that can be merged as asked: every stored scale, or
    with ``flip`` those that also hold their mirrored pass."""
    return {s for s, r in result.per_scale.items() if not flip or r.flipped_pass is not None}


def _ran_in(result: InferenceResult, precision: str, model: MultiScaleSegmenter) -> bool:
    """Returns True when every pass of ``result`` ran in what ``precision`` resolves to for
    ``model`` and none was gated."""
    ran = resolve_precision(precision, model_device(model))
    return all(r.cost.precision == ran and r.computed is None for r in result.per_scale.values())


def computed_scales_in(
    state: MutableMapping[str, Any], request: RunRequest, model: MultiScaleSegmenter
) -> set[float]:
    """Returns the scales stored for the request's model and image in its precision, with
    their mirrored pass for a flip request (none for a gated request, which always runs its
    cascade)."""
    base: InferenceResult | None = state.get(BASE)
    if request.gate > 0 or base is None or not _ran_in(base, request.precision, model):
        return set()
    if state.get(BASE_ID) != (request.model_key, request.image_key):
        return set()
    return _held(base, request.flip)


def _run_gated(
    state: MutableMapping[str, Any],
    request: RunRequest,
    model: MultiScaleSegmenter,
    image: np.ndarray,
    progress: Progress | None,
    limits: InputLimits | None,
) -> RunOutcome:
    """Returns the outcome of a gated request: the cascade run as asked (the shared per-scale
    cache serves what it holds); the stored base of ungated scales is left as it is."""

    def counting(scale: float, index: int, total: int, cached: bool) -> None:
        if not cached:
            state[FORWARD_PASSES] = forward_passes(state) + 1
        if progress is not None:
            progress(scale, index, total, cached)

    result = hmsa_core.infer(
        image,
        request.scales,
        model=model,
        method=request.method,
        precision=request.precision,
        gate=request.gate,
        gate_by=request.gate_by,
        flip=request.flip,
        progress=counting,
        limits=limits or limits_from_env(),
    )
    return _store(state, request, result, "infer")


def derived(state: MutableMapping[str, Any], key: Any, make: Callable[[], T]) -> T:
    """Returns ``make()`` computed once per displayed result and ``key`` (cleared on a new result)."""
    store: dict = state.setdefault(DERIVED, {})
    if key not in store:
        store[key] = make()
    return store[key]
