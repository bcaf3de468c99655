"""Compute cost of forward passes: counted FLOPs, wall seconds and peak memory.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on a *meta-device*
replica of the model: no arithmetic runs, so the cost of a cascade is known before it is run.
The same meta run estimates peak activation memory on CPU (see :class:`LiveBytesMode`); on CUDA
the allocator's measured peak is used instead.
"""

from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from hmsa_core.limits import InputLimits
from hmsa_core.models.base import scaled_size
from hmsa_core.modes import eval_mode

#: Share of the float32 activation estimate a pass holds in each precision it can run in
#: (reduced-precision activations take 2 bytes instead of 4; an estimate, see README).
ACTIVATION_SHARE = {"fp32": 1.0, "bf16": 0.5, "fp16": 0.5}


@dataclass(frozen=True)
class PassEstimate:
    """Cost of one forward pass known ahead of running it.

    Attributes:
        flops: floating-point operations (a multiply-add counts 2), counted by FlopCounterMode.
        activation_bytes: estimated peak bytes of live activations during the pass (meta run).
        param_bytes: bytes of the model's parameters and buffers.
    """

    flops: int
    activation_bytes: int
    param_bytes: int


@dataclass(frozen=True)
class ScaleCost:
    """Cost of one scale's forward pass.

    Attributes:
        scale: the scale.
        input_size: ``(h, w)`` of that scale's input.
        flops: counted FLOPs (0 never occurs for a real pass).
        seconds: measured wall time of the pass (synchronised on CUDA); when ``cached`` it is
            the time of the original pass, and no time was spent now.
        peak_bytes: the pass's peak memory plus the model's parameters, not counting what
            else is held (earlier scales' outputs, other models). CUDA: the allocator's peak
            during the pass above what was allocated before it; CPU: the meta-run estimate of
            peak live activations (best effort, see README).
        peak_measured: True when ``peak_bytes`` is a measurement (CUDA), False for the estimate.
        cached: True when the result came from the per-scale cache.
        precision: the precision the pass actually ran in: ``"fp32"``, ``"bf16"`` or ``"fp16"``
            (``"auto"`` is resolved before the pass runs).
        computed_fraction: fraction of the pass's input area actually computed, in ``[0, 1]``
            (below 1 when attention gating skipped tiles).
        flops_saved: FLOPs not spent because of gating; ``flops`` counts only what was spent.
    """

    scale: float
    input_size: tuple[int, int]
    flops: int
    seconds: float
    peak_bytes: int
    peak_measured: bool = False
    cached: bool = False
    precision: str = "fp32"
    computed_fraction: float = 1.0
    flops_saved: int = 0

    @property
    def gflops(self) -> float:
        """Returns the FLOPs in units of 1e9."""
        return self.flops / 1e9


@dataclass(frozen=True)
class CascadeCost:
    """Cost of a whole cascade: the sum over scales (peak memory: the maximum).

    Attributes:
        per_scale: the :class:`ScaleCost` of each scale, ascending by scale.
    """

    per_scale: tuple[ScaleCost, ...] = field(default_factory=tuple)

    @property
    def flops(self) -> int:
        """Returns the total FLOPs of every scale's pass."""
        return sum(c.flops for c in self.per_scale)

    @property
    def gflops(self) -> float:
        """Returns the total FLOPs in units of 1e9."""
        return self.flops / 1e9

    @property
    def seconds(self) -> float:
        """Returns the seconds spent now: passes served from the cache count 0."""
        return sum(c.seconds for c in self.per_scale if not c.cached)

    @property
    def compute_seconds(self) -> float:
        """Returns the seconds every pass took when it was computed, cached ones included."""
        return sum(c.seconds for c in self.per_scale)

    @property
    def peak_bytes(self) -> int:
        """Returns the largest peak of any one pass (passes run one after the other)."""
        return max((c.peak_bytes for c in self.per_scale), default=0)

    @property
    def flops_saved(self) -> int:
        """Returns the total FLOPs that gating skipped (0 for an ungated cascade)."""
        return sum(c.flops_saved for c in self.per_scale)

    @property
    def gflops_saved(self) -> float:
        """Returns the FLOPs gating skipped in units of 1e9."""
        return self.flops_saved / 1e9

    @property
    def full_flops(self) -> int:
        """Returns the FLOPs the cascade would cost ungated: spent plus saved."""
        return self.flops + self.flops_saved

    @property
    def precisions(self) -> tuple[str, ...]:
        """Returns the distinct precisions the passes ran in, ascending by first scale."""
        return tuple(dict.fromkeys(c.precision for c in self.per_scale))

    @property
    def cached_scales(self) -> tuple[float, ...]:
        """Returns the scales served from the cache."""
        return tuple(c.scale for c in self.per_scale if c.cached)

    def __repr__(self) -> str:
        """Returns one readable line: scales, GFLOPs, seconds, peak memory, cached scales."""
        from hmsa_core.display import cost_summary

        return cost_summary(self)

    def _repr_html_(self) -> str:
        """Returns the notebook display: one table row per scale."""
        from hmsa_core.display import cost_html

        return cost_html(self)


class LiveBytesMode(TorchDispatchMode):
    """Tracks the peak total bytes of tensors created by ops run under it and still alive.

    Views and in-place results are not counted twice. Works on meta tensors, whose sizes are
    real even though no memory is used, which makes it a cheap ahead-of-time estimate.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._lock = threading.Lock()

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in inputs or t._is_view():
                continue
            nbytes = t.untyped_storage().nbytes()
            with self._lock:
                self.live += nbytes
                self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._release, nbytes)
        return out


def _meta_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Returns the model's parameters and buffers as meta tensors of the same shapes."""
    state = {name: torch.empty_like(p, device="meta") for name, p in model.named_parameters()}
    state.update({name: torch.empty_like(b, device="meta") for name, b in model.named_buffers()})
    return state


class _NormShape(torch.nn.Module):
    """Meta stand-in of an eval-mode normalisation layer: a new tensor of the input's shape
    and layout, as the layer makes. Normalisation FLOPs are not counted by FlopCounterMode,
    and the meta batch norm decomposes in Python (half the estimate's time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)


def _structure_key(model: torch.nn.Module) -> tuple[int, ...]:
    """Returns the identities of every module of ``model``: a value that changes when a module
    is added, removed or replaced (then cached estimates and meta replicas are stale). One walk
    of the module tree, far cheaper than the estimate it guards."""
    return tuple(map(id, model.modules()))


_REPLICAS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[int, ...], torch.nn.Module]]
_REPLICAS = weakref.WeakKeyDictionary()


def _meta_replica(model: torch.nn.Module) -> torch.nn.Module:
    """Returns the (cached) meta replica of eval-mode ``model``: see :func:`_build_meta_replica`.

    Building one deep-copies the whole module tree (about 0.2 s for the official model), so it
    is kept per model and rebuilt only when a module is added, removed or replaced."""
    key = _structure_key(model)
    with _ESTIMATE_LOCK:
        cached = _REPLICAS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    replica = _build_meta_replica(model)
    with _ESTIMATE_LOCK:
        _REPLICAS[model] = (key, replica)
    return replica


def _build_meta_replica(model: torch.nn.Module) -> torch.nn.Module:
    """Returns a copy of ``model`` whose parameters and buffers are meta tensors (no data
    copied) and whose BatchNorm layers are :class:`_NormShape` stand-ins."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    replica = copy.deepcopy(model, memo)
    for module in list(replica.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, torch.nn.BatchNorm2d) and not child.training:
                module._modules[name] = _NormShape()
    return replica


def param_bytes(model: torch.nn.Module) -> int:
    """Returns the bytes of all parameters and buffers of ``model``."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


#: model -> (its structure key, {(h, w, batch): estimate}).
_ESTIMATES: weakref.WeakKeyDictionary[
    torch.nn.Module, tuple[tuple[int, ...], dict[tuple[int, int, int], PassEstimate]]
]
_ESTIMATES = weakref.WeakKeyDictionary()
_ESTIMATE_LOCK = threading.Lock()


def estimate_pass(
    model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1
) -> PassEstimate:
    """Returns the :class:`PassEstimate` of one eval-mode forward pass on a ``(batch, 3, h, w)`` input.

    Runs the model on meta tensors under FlopCounterMode and :class:`LiveBytesMode`; cached per
    model, module structure (a replaced module invalidates it) and input size. Falls back to a real no-grad run on zeros if the model cannot run on
    the meta device.
    """
    key = (int(input_size[0]), int(input_size[1]), int(batch))
    structure = _structure_key(model)
    with _ESTIMATE_LOCK:
        known = _ESTIMATES.get(model)
        cached = known[1].get(key) if known is not None and known[0] == structure else None
    if cached is not None:
        return cached
    with eval_mode(model):
        counter = FlopCounterMode(display=False)
        live = LiveBytesMode()
        try:
            x = torch.empty((batch, 3, *key[:2]), device="meta")
            replica = _meta_replica(model)  # never swap the shared model's tensors: other
            with torch.no_grad(), counter, live:  # threads may be running it right now
                replica(x)
        except (NotImplementedError, RuntimeError):
            device = next(model.parameters()).device
            x = torch.zeros((batch, 3, *key[:2]), device=device)
            counter = FlopCounterMode(display=False)
            live = LiveBytesMode()
            with torch.no_grad(), counter, live:
                model(x)
    estimate = PassEstimate(
        flops=int(counter.get_total_flops()),
        activation_bytes=int(live.peak),
        param_bytes=param_bytes(model),
    )
    with _ESTIMATE_LOCK:
        known = _ESTIMATES.get(model)
        if known is None or known[0] != structure:
            known = _ESTIMATES[model] = (structure, {})
        known[1][key] = estimate
    return estimate


def estimate_cascade(
    model: torch.nn.Module,
    image_size: tuple[int, int],
    scales: tuple[float, ...],
    *,
    precision: str = "fp32",
    limits: InputLimits | None = None,
) -> CascadeCost:
    """Returns the expected :class:`CascadeCost` of a cascade before running it (``seconds`` = 0).

    Args:
        model: the segmenter.
        image_size: ``(H, W)`` of the 1.0 input.
        scales: the cascade.
        precision: the precision the passes will run in (``"auto"`` is resolved for the
            model's device); reduced precision halves the activation estimate.
        limits: with the tile budget of the model's device (``max_tile_pixels``, or
            ``cuda_max_tile_pixels`` on CUDA): passes above it are planned in tiles, whose FLOPs
            (overlaps included) and largest tile's activations are reported. ``None``: whole
            passes, as before tiling existed.
    """
    from hmsa_core.precision import resolve_precision
    from hmsa_core.tiling import pass_tiles

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    ran = resolve_precision(precision, device)
    tileable = limits is not None and not hasattr(model, "merge_explicit")
    align = int(getattr(model, "tile_alignment", 32))
    per_scale = []
    for scale in sorted(scales):
        size = scaled_size(image_size, scale)
        est = estimate_pass(model, size)
        full = size[0] * size[1]
        flops, largest = est.flops, full
        windows = None
        if tileable and limits is not None:
            windows = pass_tiles(size, limits, device.type, align)
        if windows is not None:
            flops = round(est.flops * sum(w.area for w in windows) / full)
            largest = max(w.area for w in windows)
        activations = est.activation_bytes * largest / max(full, 1) * ACTIVATION_SHARE[ran]
        per_scale.append(
            ScaleCost(
                scale=scale,
                input_size=size,
                flops=flops,
                seconds=0.0,
                peak_bytes=round(activations) + est.param_bytes,
                precision=ran,
            )
        )
    return CascadeCost(tuple(per_scale))
