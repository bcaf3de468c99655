"""Counting a pass's cost ahead of running it: FLOPs and peak activation bytes of one eval-mode
pass, on a meta-device replica of the model (no arithmetic), read from its traced
:class:`~hmsa_core.pass_formula.PassFormula` once the model has one. See :mod:`hmsa_core.cost`."""

from __future__ import annotations

import copy
import threading
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from hmsa_core.cost_types import PassEstimate
from hmsa_core.modes import eval_mode
from hmsa_core.pass_formula import PassFormula, trace


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


_FORMULAS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[int, ...], object]]
_FORMULAS = weakref.WeakKeyDictionary()


def _formula(model: torch.nn.Module, structure: tuple[int, ...]) -> PassFormula | None:
    """Returns the model's cached :class:`~hmsa_core.pass_formula.PassFormula` (traced once per
    module structure), or ``None`` when its passes cannot be written as one."""
    with _ESTIMATE_LOCK:
        known = _FORMULAS.get(model)
    if known is not None and known[0] == structure:
        return known[1]  # type: ignore[return-value]
    with eval_mode(model):
        formula = trace(_meta_replica(model))
    with _ESTIMATE_LOCK:
        _FORMULAS[model] = (structure, formula)
    return formula


def count_pass(model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1) -> PassEstimate:
    """Returns the :class:`PassEstimate` of one eval-mode pass on a ``(batch, 3, h, w)`` input,
    counted afresh: the model runs on meta tensors under FlopCounterMode and
    :class:`LiveBytesMode` (a real no-grad run on zeros if it cannot run on the meta device)."""
    size = (int(input_size[0]), int(input_size[1]))
    with eval_mode(model):
        counter = FlopCounterMode(display=False)
        live = LiveBytesMode()
        try:
            x = torch.empty((batch, 3, *size), device="meta")
            replica = _meta_replica(model)  # never swap the shared model's tensors: other
            with torch.no_grad(), counter, live:  # threads may be running it right now
                replica(x)
        except (NotImplementedError, RuntimeError):
            device = next(model.parameters()).device
            x = torch.zeros((batch, 3, *size), device=device)
            counter = FlopCounterMode(display=False)
            live = LiveBytesMode()
            with torch.no_grad(), counter, live:
                model(x)
    return PassEstimate(
        flops=int(counter.get_total_flops()),
        activation_bytes=int(live.peak),
        param_bytes=param_bytes(model),
    )


def estimate_pass(
    model: torch.nn.Module, input_size: tuple[int, int], batch: int = 1
) -> PassEstimate:
    """Returns the :class:`PassEstimate` of one eval-mode forward pass on a ``(batch, 3, h, w)`` input.

    A batch-1 pass is read from the model's :class:`~hmsa_core.pass_formula.PassFormula`
    (one meta pass per model, then exact for every size in microseconds); other batches, and
    models the formula cannot express, are counted afresh (:func:`count_pass`). Cached per
    model, module structure (a replaced module invalidates it) and input size.
    """
    key = (int(input_size[0]), int(input_size[1]), int(batch))
    structure = _structure_key(model)
    with _ESTIMATE_LOCK:
        known = _ESTIMATES.get(model)
        cached = known[1].get(key) if known is not None and known[0] == structure else None
    if cached is not None:
        return cached
    formula = _formula(model, structure) if batch == 1 else None
    if formula is not None:
        flops, activations = formula.count(key[:2])
        estimate = PassEstimate(flops, activations, param_bytes(model))
    else:
        estimate = count_pass(model, key[:2], batch)
    with _ESTIMATE_LOCK:
        known = _ESTIMATES.get(model)
        if known is None or known[0] != structure:
            known = _ESTIMATES[model] = (structure, {})
        known[1][key] = estimate
    return estimate
