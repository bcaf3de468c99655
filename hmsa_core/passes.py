"""Running the passes of a plan: one forward pass per planned pass (cached), then a cheap merge.

The expensive part, :func:`run_scales` (or :func:`run_plan` for a plan in hand), runs the
model once per pass of its :class:`~hmsa_core.plan.CascadePlan` and keeps every output; the
cheap part, :func:`hmsa_core.merge.merge` (through :func:`hmsa_core.results.assemble`),
combines them. :func:`infer_prepared` does both, and :func:`extend_result` reuses the passes
an earlier result holds (the held/fresh logic of :func:`hmsa_core.extend`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from hmsa_core.cache import ByteLRUCache, model_token, tensor_digest, weights_version
from hmsa_core.fastpath import check_device as check_fast_device
from hmsa_core.fastpath import fast_forward
from hmsa_core.folding import pass_module
from hmsa_core.gated_pass import run_gated
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, rescale_input
from hmsa_core.modes import eval_mode
from hmsa_core.options import InferOptions, check_for_model
from hmsa_core.plan import CascadePlan, PassPlan, model_device, plan_cascade
from hmsa_core.precision import RUN_DTYPES, autocast_for, to_layout
from hmsa_core.prepare import PreparedInput
from hmsa_core.results import (
    InferenceResult,
    PassOutcome,
    ScaleResult,
    assemble,
    mirror,
    to_float32,
)
from hmsa_core.tiling import Window, run_windows

DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024

#: A per-scale cache entry: one pass's outputs, cost, computed mask and windows.
CacheEntry = PassOutcome

#: Progress callback: ``(scale, index, total, cached)`` after each pass is done (``index``
#: and ``total`` count passes: with flip, two per scale).
ProgressFn = Callable[[float, int, int, bool], None]


def resolve_options(options: InferOptions | None, settings: Mapping[str, object]) -> InferOptions:
    """Returns ``options`` (default :class:`InferOptions`) with the keyword ``settings``
    (``precision=``, ``gate=``, ...) applied, those given as ``None`` left as they are: the
    one way loose keywords become options."""
    options = options or InferOptions()
    changes = {k: v for k, v in settings.items() if v is not None}
    return options.with_changes(**changes) if changes else options


def output_bytes(output: ScaleOutput) -> int:
    """Returns the bytes held by every map of ``output``."""
    tensors = [output.logits, output.attention, output.aux_logits, output.features]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass(frozen=True)
class PassRunner:
    """How every pass of one plan runs: the module (the BatchNorm-folded copy in reduced
    precision, see :mod:`hmsa_core.folding`), its device, precision and fast path."""

    plan: CascadePlan
    device: torch.device
    module: torch.nn.Module

    @classmethod
    def for_plan(cls, model: MultiScaleSegmenter, plan: CascadePlan) -> PassRunner:
        """Returns the runner of ``plan`` on ``model`` (checks the fast path's device)."""
        device = model_device(model)
        if plan.options.fast_path is not None:
            check_fast_device(device)
        return cls(plan, device, pass_module(model, RUN_DTYPES[plan.precision]))

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns the :class:`ScaleOutput` of one no-grad run on ``x`` ``(B, 3, h, w)`` in the
        plan's precision and layout (aux logits dropped unless ``options.aux``)."""
        fast, precision = self.plan.options.fast_path, self.plan.precision
        if fast is not None and x.shape[-2] * x.shape[-1] <= fast.small_pixels:
            output = fast_forward(self.module, fast, precision)(x)
        else:
            with torch.no_grad(), autocast_for(self.device, precision):
                output = self.module(to_layout(x, precision))
        if self.plan.options.aux or output.aux_logits is None:
            return output
        return replace(output, aux_logits=None)

    def run(self, x: torch.Tensor, windows: tuple[Window, ...] | None) -> ScaleOutput:
        """Returns the output of the pass on ``x``: one run, or blended ``windows``."""
        if windows is None:
            return self.forward(x)
        return run_windows(self.forward, x, windows, self.plan.options.limits.tile_overlap).output

    def timed(self, work: Callable[[], ScaleOutput]) -> tuple[ScaleOutput, float, int | None]:
        """Returns ``(output, seconds, cuda_peak_bytes or None)`` of running ``work``."""
        on_cuda = self.device.type == "cuda"
        held_before = 0
        if on_cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            held_before = int(torch.cuda.memory_allocated(self.device))
        start = time.perf_counter()
        output = work()
        if on_cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        if not on_cuda:
            return output, seconds, None
        return output, seconds, int(torch.cuda.max_memory_allocated(self.device)) - held_before

    def run_planned(self, x: torch.Tensor, p: PassPlan, extra_seconds: float = 0.0) -> PassOutcome:
        """Returns the :class:`PassOutcome` of pass ``p`` on its input ``x``, in its planned
        windows (``extra_seconds``, e.g. the gate's, are added to its time)."""
        output, seconds, peak = self.timed(lambda: self.run(x, p.windows))
        cost = self.plan.pass_cost(p, p.windows, seconds + extra_seconds, peak)
        return PassOutcome(to_float32(output), cost, None, p.windows)


def _run_pass(
    runner: PassRunner,
    image: torch.Tensor,
    p: PassPlan,
    done: Mapping[tuple[float, bool], PassOutcome],
) -> PassOutcome:
    """Returns the outcome of pass ``p`` on the 1.0 input ``image`` (already mirrored for a
    flipped pass); a flipped pass's maps and mask come back mirrored, its windows stay in the
    mirrored frame it ran in."""
    x = rescale_input(image, p.scale)
    if not p.gated:
        outcome = runner.run_planned(x, p)
    else:
        lower = {s: o.output for (s, f), o in done.items() if f == p.flip and s < p.scale}
        if p.flip:
            lower = {s: mirror(o) for s, o in lower.items()}
        outcome = run_gated(runner, x, p, lower)
    if not p.flip:
        return outcome
    computed = None if outcome.computed is None else torch.flip(outcome.computed, (-1,))
    return replace(outcome, output=mirror(outcome.output), computed=computed)


def _cache_key(base: tuple, plan: CascadePlan, p: PassPlan, has_aux: bool) -> tuple:
    """Returns the per-scale cache key of pass ``p``: image, model, weights and device
    (``base``), scale, flip, the precision that ran, the tiling, the gate, the lower scales
    a gated pass depends on, the fast path and whether aux logits are kept."""
    options = plan.options
    lower = tuple(s for s in plan.scales if s < p.scale) if p.gated else ()
    gate = (options.gate, options.gate_by) if p.gated else (0.0, "")
    return (
        *base,
        p.scale,
        p.flip,
        p.precision,
        plan.tile_key(p),
        gate,
        lower,
        options.fast_path,
        options.aux and has_aux,
    )


def run_plan(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    plan: CascadePlan,
    *,
    cache: ByteLRUCache[CacheEntry] | None = None,
    progress: ProgressFn | None = None,
    held: Mapping[tuple[float, bool], PassOutcome] | None = None,
) -> dict[float, ScaleResult]:
    """Returns scale -> :class:`ScaleResult` of running every pass of ``plan`` on ``image``
    ``(B, 3, H, W)`` in order; ``held`` ``(scale, flip) -> outcome`` passes are taken as they
    are (marked cached), the others from ``cache`` when it has them, else run."""
    runner = PassRunner.for_plan(model, plan)
    image = image.to(runner.device)
    inputs = {False: image, True: torch.flip(image, (-1,)) if plan.options.flip else image}
    base: tuple = ()
    if cache is not None:  # the token reads every weight's version counter: only with a cache
        base = (
            tensor_digest(image),
            model_token(model),
            weights_version(model),
            str(runner.device),
        )
    held = held or {}
    done: dict[tuple[float, bool], PassOutcome] = {}
    with eval_mode(model):
        for index, p in enumerate(plan.passes):
            found = held.get((p.scale, p.flip))
            key = _cache_key(base, plan, p, model.has_aux) if cache is not None else None
            if found is None and cache is not None:
                found = cache.get(key)
            if found is not None:
                done[(p.scale, p.flip)] = found.as_cached()
            else:
                outcome = _run_pass(runner, inputs[p.flip], p, done)
                done[(p.scale, p.flip)] = outcome
                if cache is not None:
                    cache.put(key, outcome, output_bytes(outcome.output))
            if progress is not None:
                progress(p.scale, index, len(plan.passes), found is not None)
    return {s: ScaleResult.of(s, done[(s, False)], done.get((s, True))) for s in plan.scales}


def run_scales(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scales: Iterable[float],
    options: InferOptions | None = None,
    *,
    cache: ByteLRUCache[CacheEntry] | None = None,
    progress: ProgressFn | None = None,
    **settings: object,
) -> dict[float, ScaleResult]:
    """Returns scale -> :class:`ScaleResult`: one eval-mode forward pass per planned pass,
    ascending (with flip, each scale's mirrored pass right after it).

    Args:
        model: the segmenter (run in eval mode, without gradients).
        image: ``(B, 3, H, W)`` normalised input at scale 1.0.
        scales: the cascade; validated once, by the plan (see
            :func:`~hmsa_core.cascade.validate_scales`).
        options: the :class:`~hmsa_core.options.InferOptions` (default: exact fp32-or-auto
            passes, ``DEFAULT_LIMITS``, no gate, no flip).
        cache: per-scale cache keyed by image content, model identity, weights version,
            device, scale, flip, the precision that actually ran, the tiling and the gate;
            ``None`` disables caching. A hit costs no forward pass and returns the cached
            tensors themselves: treat them as read-only.
        progress: called after each pass with ``(scale, index, total, cached)``.
        settings: :class:`~hmsa_core.options.InferOptions` fields to change (``precision=``,
            ``limits=``, ``gate=``, ``flip=``, ``fast_path=``, ``aux=``).
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be a (B, 3, H, W) tensor, got {tuple(image.shape)}")
    options = resolve_options(options, settings)
    size = (int(image.shape[-2]), int(image.shape[-1]))
    plan = plan_cascade(model, size, scales, options, batch=int(image.shape[0]))
    return run_plan(model, image, plan, cache=cache, progress=progress)


def infer_prepared(
    prepared: PreparedInput,
    scales: Iterable[float],
    model: MultiScaleSegmenter,
    *,
    method: str = "hierarchical",
    return_attn: bool = True,
    options: InferOptions | None = None,
    cache: ByteLRUCache[CacheEntry] | None = None,
    progress: ProgressFn | None = None,
    **settings: object,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of an already prepared image (see
    :func:`hmsa_core.infer`; ``settings`` as :func:`run_scales`).

    Raises:
        ValueError: as :func:`run_scales`; also a gate above 0 with a method other than
            ``"hierarchical"`` (gating is defined by the hierarchical merge).
    """
    options = resolve_options(options, settings)
    check_for_model(options, model.has_attention, model.arch, method)
    per_scale = run_scales(model, prepared.tensor, scales, options, cache=cache, progress=progress)
    return assemble(
        per_scale,
        method,
        prepared.rgb,
        model.labels,
        model,
        model.arch,
        keep_attention=return_attn,
        flip=options.flip,
    )


def held_passes(
    base: InferenceResult | None, plan: CascadePlan
) -> dict[tuple[float, bool], PassOutcome]:
    """Returns the passes of ``plan`` that ``base`` holds and may serve as they are: whole
    (ungated) passes in the precision the plan runs. A gated plan takes nothing (a gated pass
    depends on every lower scale)."""
    if base is None or plan.options.gated:
        return {}
    held: dict[tuple[float, bool], PassOutcome] = {}
    for p in plan.passes:
        result = base.per_scale.get(p.scale)
        if result is None:
            continue
        outcome = result.flipped_pass if p.flip else result.plain_pass
        if (
            outcome is not None
            and outcome.computed is None
            and outcome.cost.precision == p.precision
        ):
            held[(p.scale, p.flip)] = outcome
    return held


def extend_result(
    base: InferenceResult | None,
    prepared: PreparedInput,
    scales: Iterable[float],
    model: MultiScaleSegmenter,
    *,
    method: str,
    options: InferOptions,
    cache: ByteLRUCache[CacheEntry] | None,
    progress: ProgressFn | None,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of ``scales`` on ``prepared`` merged with
    ``method``, running only the passes ``base`` does not hold (:func:`held_passes`; held
    passes are reported to ``progress`` first, as cached). See :func:`hmsa_core.extend`."""
    if base is not None and not np.array_equal(base.image, prepared.rgb):
        raise ValueError("the stored result belongs to another image; run the cascade afresh")
    check_for_model(options, model.has_attention, model.arch, method)
    plan = plan_cascade(model, prepared.size, scales, options)
    held = held_passes(base, plan)
    first = [p for p in plan.passes if (p.scale, p.flip) in held]  # reported first, as cached
    rest = [p for p in plan.passes if (p.scale, p.flip) not in held]
    ordered = replace(plan, passes=(*first, *rest))
    per_scale = run_plan(model, prepared.tensor, ordered, cache=cache, progress=progress, held=held)
    return assemble(
        per_scale, method, prepared.rgb, model.labels, model, model.arch, True, options.flip
    )
