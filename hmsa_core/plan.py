"""The pass plan: every fact about the passes of a cascade, decided once.

:func:`plan_cascade` computes, for a model, an image size, a cascade and an
:class:`~hmsa_core.options.InferOptions`, one :class:`PassPlan` per pass (each scale, and each
scale again mirrored when ``flip`` is on): its input size, the windows it runs in (tiling),
its precision, and its estimated FLOPs and peak memory. Running (:mod:`hmsa_core.passes`) and
costing (:func:`hmsa_core.cost.estimate_cascade`) both read this plan; nothing else decides
tiling, tile alignment or precision. A gated pass's windows depend on the lower scales'
attention, so the plan gives the rule (:meth:`CascadePlan.gated_windows`) and the runner and
the tests apply the same one.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch

from hmsa_core.cascade import validate_scales
from hmsa_core.cost_types import ACTIVATION_SHARE, CascadeCost, PassEstimate, ScaleCost
from hmsa_core.counting import estimate_pass
from hmsa_core.gating import merge_rectangles, rectangle_cores, tile_rectangles
from hmsa_core.limits import DEFAULT_LIMITS
from hmsa_core.merge import ExplicitMerger
from hmsa_core.models.base import MultiScaleSegmenter, scaled_size
from hmsa_core.options import InferOptions, check_for_model
from hmsa_core.precision import resolve_precision
from hmsa_core.tiling import (
    Box,
    Window,
    kept_window,
    pass_tiles,
    plan_tiles,
    round_up,
    window_for_core,
)

#: A gated pass runs whole when its windows would cover at least this share of its area.
WHOLE_PASS_SHARE = 0.9
#: Limits under which no pass is tiled (the cost of whole passes, as before tiling existed).
WHOLE_PASS_LIMITS = replace(
    DEFAULT_LIMITS, max_tile_pixels=sys.maxsize, cuda_max_tile_pixels=sys.maxsize
)


def model_device(model: torch.nn.Module) -> torch.device:
    """Returns the device of the model's first parameter (CPU for a parameterless model)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def tile_alignment(model: torch.nn.Module) -> int:
    """Returns the multiple of pixels tile offsets keep for ``model``
    (:attr:`MultiScaleSegmenter.tile_alignment`)."""
    return int(getattr(model, "tile_alignment", MultiScaleSegmenter.tile_alignment))


def context_margin(model: torch.nn.Module) -> int | None:
    """Returns the context in pixels gated windows of ``model`` take around the kept tiles:
    its :attr:`~hmsa_core.models.base.MultiScaleSegmenter.context_margin` (exact windows), or
    ``None`` when it states none (global context: blended windows, see
    :meth:`CascadePlan.windows_for_cores`)."""
    margin = getattr(model, "context_margin", None)
    return None if margin is None else int(margin)


def can_tile(model: torch.nn.Module) -> bool:
    """Returns True when ``model``'s passes can run in tiles (not explicit attention, whose
    merge needs each scale's whole feature map)."""
    return not isinstance(model, ExplicitMerger)


@dataclass(frozen=True)
class PassPlan:
    """One planned forward pass.

    Attributes:
        scale: the scale.
        flip: True for the pass on the mirrored image (DESIGN 1.6).
        input_size: ``(h, w)`` of the pass's input.
        windows: the windows it runs in, or ``None`` when it runs whole.
        precision: the resolved precision (``"fp32"``, ``"bf16"`` or ``"fp16"``).
        gated: True when the gate decides its windows at run time (then ``flops`` is the
            most it can cost: the ungated pass).
        estimate: the counted cost of the whole pass (:class:`~hmsa_core.cost_types.PassEstimate`).
        flops: estimated FLOPs (windows: the whole pass's FLOPs times their area share).
        peak_bytes: estimated peak memory (largest window's activations plus the weights).
    """

    scale: float
    flip: bool
    input_size: tuple[int, int]
    windows: tuple[Window, ...] | None
    precision: str
    gated: bool
    estimate: PassEstimate
    flops: int
    peak_bytes: int


@dataclass(frozen=True)
class CascadePlan:
    """Every pass of a cascade, in the order they run (ascending scale; a scale's flipped
    pass right after it).

    Attributes:
        image_size: ``(H, W)`` of the 1.0 input.
        scales: the validated cascade, ascending.
        options: the :class:`~hmsa_core.options.InferOptions` it was planned for.
        device_type: the device type the passes run on.
        precision: the resolved precision of every pass.
        tiled: whether the model's passes can run in tiles.
        align: the tile alignment in pixels.
        batch: the batch size planned for.
        passes: one :class:`PassPlan` per pass, in run order.
        margin: the context, in pixels, a gated pass's windows take around the tiles the
            gate keeps: the model's ``context_margin`` (exact windows, run in batches and
            pasted), or ``None`` for a model without one (windows grown by
            ``limits.tile_overlap`` and blended, approximate for global context).
    """

    image_size: tuple[int, int]
    scales: tuple[float, ...]
    options: InferOptions
    device_type: str
    precision: str
    tiled: bool
    align: int
    batch: int
    passes: tuple[PassPlan, ...]
    margin: int | None = None

    @property
    def flops(self) -> int:
        """Returns the estimated FLOPs of every pass (gated passes at their most)."""
        return sum(p.flops for p in self.passes)

    def pass_for(self, scale: float, flip: bool = False) -> PassPlan:
        """Returns the :class:`PassPlan` of ``scale`` (mirrored when ``flip``)."""
        for p in self.passes:
            if p.scale == scale and p.flip == flip:
                return p
        raise ValueError(f"scale {scale:g} (flip={flip}) is not in this plan")

    def cost(self) -> CascadeCost:
        """Returns the expected :class:`CascadeCost` (``seconds`` = 0) of the planned passes."""
        return CascadeCost(
            tuple(
                ScaleCost(
                    scale=p.scale,
                    input_size=p.input_size,
                    flops=p.flops,
                    seconds=0.0,
                    peak_bytes=p.peak_bytes,
                    precision=p.precision,
                    flipped=p.flip,
                )
                for p in self.passes
            )
        )

    def tile_key(self, p: PassPlan) -> tuple[int, int] | None:
        """Returns the part of the cache key that says how pass ``p`` is tiled."""
        if p.windows is None:
            return None
        limits = self.options.limits
        return (limits.tile_pixels(self.device_type), limits.tile_overlap)

    def windows_for_cores(self, cores: Iterable[Box], size: tuple[int, int]) -> tuple[Window, ...]:
        """Returns the windows that compute ``cores`` of a pass at ``size``: each core with
        :attr:`margin` pixels of context (:func:`~hmsa_core.tiling.kept_window`), or, for a
        model without a margin, grown by ``limits.tile_overlap`` and clipped to the image
        (:func:`~hmsa_core.tiling.window_for_core`); a core whose window exceeds the tile
        budget is split further."""
        limits = self.options.limits
        budget = limits.tile_pixels(self.device_type)
        margin = limits.tile_overlap if self.margin is None else self.margin
        split_overlap = round_up(margin, self.align)

        def grown(core: Box) -> Window:
            if self.margin is None:
                return window_for_core(core, size, margin)
            return kept_window(core, size, margin, self.align)

        windows: list[Window] = []
        for top, bottom, left, right in cores:
            window = grown((top, bottom, left, right))
            if window.area <= budget:
                windows.append(window)
                continue
            parts = plan_tiles((bottom - top, right - left), budget, split_overlap, self.align)
            for part in parts:
                ct, cb, cl, cr = part.core
                windows.append(grown((ct + top, cb + top, cl + left, cr + left)))
        return tuple(windows)

    def gated_windows(self, p: PassPlan, needed: torch.Tensor) -> tuple[Window, ...] | None:
        """Returns the windows gated pass ``p`` runs in when the gate needs the tiles
        ``needed`` ``(ny, nx)`` (of ``options.limits.gate_tile`` pixels), or ``None`` when it
        runs as planned ungated (every tile needed, or windows that would cover at least
        :data:`WHOLE_PASS_SHARE` of its area)."""
        if bool(needed.all()):
            return None
        tile = self.options.limits.gate_tile
        rects = tile_rectangles(needed)
        if self.margin is not None:  # exact windows: fewer, larger ones where that costs less
            rects = merge_rectangles(rects, tile, self.margin)
        cores = rectangle_cores(rects, tile, p.input_size)
        windows = self.windows_for_cores(cores, p.input_size)
        full_area = p.input_size[0] * p.input_size[1]
        if sum(w.area for w in windows) >= WHOLE_PASS_SHARE * full_area:
            return None
        return windows

    def pass_cost(
        self,
        p: PassPlan,
        windows: tuple[Window, ...] | None,
        seconds: float,
        cuda_peak: int | None,
        computed_fraction: float = 1.0,
    ) -> ScaleCost:
        """Returns the :class:`ScaleCost` of pass ``p`` run in ``windows`` (``None``: whole).

        A gated pass reports the FLOPs it did not spend as saved. Peak memory is the CUDA
        allocator's ``cuda_peak`` plus the weights, else the estimate of the largest window."""
        flops = _window_flops(p.estimate, p.input_size, windows)
        if cuda_peak is not None:
            peak, measured = cuda_peak + p.estimate.param_bytes, True
        else:
            peak, measured = _peak_estimate(p.estimate, p.input_size, windows, p.precision), False
        return ScaleCost(
            scale=p.scale,
            input_size=p.input_size,
            flops=flops,
            seconds=seconds,
            peak_bytes=peak,
            peak_measured=measured,
            precision=p.precision,
            computed_fraction=computed_fraction,
            flops_saved=max(0, p.estimate.flops - flops) if p.gated else 0,
            flipped=p.flip,
            gate=self.options.gate if p.gated else 0.0,
            gate_by=self.options.gate_by if p.gated else "",
        )


def _window_flops(
    estimate: PassEstimate, size: tuple[int, int], windows: tuple[Window, ...] | None
) -> int:
    """Returns the FLOPs of a pass at ``size`` run in ``windows`` (``None``: whole): the whole
    pass's counted FLOPs times the windows' area share (the models' cost is linear in area)."""
    if windows is None:
        return estimate.flops
    return round(estimate.flops * sum(w.area for w in windows) / (size[0] * size[1]))


def _peak_estimate(
    estimate: PassEstimate,
    size: tuple[int, int],
    windows: tuple[Window, ...] | None,
    precision: str,
) -> int:
    """Returns the estimated peak bytes of a pass: its largest window's share of the whole
    pass's activations, in ``precision``, plus the weights."""
    full = max(1, size[0] * size[1])
    largest = full if windows is None else max((w.area for w in windows), default=0)
    activations = estimate.activation_bytes * largest / full * ACTIVATION_SHARE[precision]
    return round(activations) + estimate.param_bytes


_PLANS: weakref.WeakKeyDictionary[torch.nn.Module, OrderedDict] = weakref.WeakKeyDictionary()
_PLAN_LOCK = threading.Lock()
_PLANS_PER_MODEL = 64


def plan_cascade(
    model: torch.nn.Module,
    image_size: tuple[int, int],
    scales: Iterable[float] | str,
    options: InferOptions | None = None,
    *,
    batch: int = 1,
) -> CascadePlan:
    """Returns the :class:`CascadePlan` of running ``scales`` on an ``(H, W)`` image with
    ``model`` where it is, under ``options`` (default :class:`InferOptions`); computed once per
    (model, size, cascade, options, batch) and kept (per model, the 64 latest).

    Raises:
        ValueError: a bad cascade for this image and model (see
            :func:`~hmsa_core.cascade.validate_scales`), a precision the device cannot run,
            or a gate the model cannot use.
    """
    options = options or InferOptions()
    min_side = int(getattr(model, "min_input_side", 1))
    cascade = validate_scales(scales, image_size, min_side, options.limits)
    check_for_model(
        options, bool(getattr(model, "has_attention", False)), str(getattr(model, "arch", "")), None
    )
    device = model_device(model)
    size = (int(image_size[0]), int(image_size[1]))
    key = (size, cascade, options, str(device), int(batch))
    with _PLAN_LOCK:
        known = _PLANS.setdefault(model, OrderedDict())
        if key in known:
            known.move_to_end(key)
            return known[key]
    plan = _build(model, size, cascade, options, device, int(batch))
    with _PLAN_LOCK:
        known[key] = plan
        while len(known) > _PLANS_PER_MODEL:
            known.popitem(last=False)
    return plan


def _build(
    model: torch.nn.Module,
    size: tuple[int, int],
    cascade: tuple[float, ...],
    options: InferOptions,
    device: torch.device,
    batch: int,
) -> CascadePlan:
    """Returns the :class:`CascadePlan` (see :func:`plan_cascade`), uncached."""
    precision = resolve_precision(options.precision, device)
    tiled, align = can_tile(model), tile_alignment(model)
    passes: list[PassPlan] = []
    for index, scale in enumerate(cascade):
        scaled = scaled_size(size, scale)
        estimate = estimate_pass(model, scaled, batch=batch)
        windows = pass_tiles(scaled, options.limits, device.type, align) if tiled else None
        flops = _window_flops(estimate, scaled, windows)
        for flip in (False, True) if options.flip else (False,):
            passes.append(
                PassPlan(
                    scale=scale,
                    flip=flip,
                    input_size=scaled,
                    windows=windows,
                    precision=precision,
                    gated=options.gated and index > 0,
                    estimate=estimate,
                    flops=flops,
                    peak_bytes=_peak_estimate(estimate, scaled, windows, precision),
                )
            )
    return CascadePlan(
        image_size=size,
        scales=cascade,
        options=options,
        device_type=device.type,
        precision=precision,
        tiled=tiled,
        align=align,
        batch=batch,
        passes=tuple(passes),
        margin=context_margin(model),
    )
