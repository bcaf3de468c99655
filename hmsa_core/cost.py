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

from hmsa_core.models.base import scaled_size


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
    """

    scale: float
    input_size: tuple[int, int]
    flops: int
    seconds: float
    peak_bytes: int
    peak_measured: bool = False
    cached: bool = False

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
    def cached_scales(self) -> tuple[float, ...]:
        """Returns the scales served from the cache."""
        return tuple(c.scale for c in self.per_scale if c.cached)


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


def _meta_replica(model: torch.nn.Module) -> torch.nn.Module:
    """Returns a copy of ``model`` whose parameters and buffers are meta tensors (no data copied)."""
    memo: dict[int, object] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def param_bytes(model: torch.nn.Module) -> int:
    """Returns the bytes of all parameters and buffers of ``model``."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


_ESTIMATES: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, int, int], PassEstimate]]
_ESTIMATES = weakref.WeakKeyDictionary()
_ESTIMATE_LOCK = threading.Lock()


def estimate_pass(
    model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1
) -> PassEstimate:
    """Returns the :class:`PassEstimate` of one eval-mode forward pass on a ``(batch, 3, h, w)`` input.

    Runs the model on meta tensors under FlopCounterMode and :class:`LiveBytesMode`; cached per
    model and input size. Falls back to a real no-grad run on zeros if the model cannot run on
    the meta device.
    """
    key = (int(input_size[0]), int(input_size[1]), int(batch))
    with _ESTIMATE_LOCK:
        cached = _ESTIMATES.get(model, {}).get(key)
    if cached is not None:
        return cached
    was_training = model.training
    model.eval()
    try:
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
    finally:
        model.train(was_training)
    estimate = PassEstimate(
        flops=int(counter.get_total_flops()),
        activation_bytes=int(live.peak),
        param_bytes=param_bytes(model),
    )
    with _ESTIMATE_LOCK:
        _ESTIMATES.setdefault(model, {})[key] = estimate
    return estimate


def estimate_cascade(
    model: torch.nn.Module, image_size: tuple[int, int], scales: tuple[float, ...]
) -> CascadeCost:
    """Returns the expected :class:`CascadeCost` of a cascade before running it (``seconds`` = 0).

    ``image_size`` is ``(H, W)`` of the 1.0 input.
    """
    per_scale = []
    for scale in sorted(scales):
        size = scaled_size(image_size, scale)
        est = estimate_pass(model, size)
        per_scale.append(
            ScaleCost(
                scale=scale,
                input_size=size,
                flops=est.flops,
                seconds=0.0,
                peak_bytes=est.activation_bytes + est.param_bytes,
            )
        )
    return CascadeCost(tuple(per_scale))
