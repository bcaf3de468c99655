"""Inference copies of a model for reduced-precision passes: BatchNorm folded into convolutions.

In eval mode a BatchNorm that directly follows a convolution is a per-channel affine map, so
it folds into that convolution: ``W' = W * g / s``, ``b' = (b - mu) * g / s + beta`` with
``s = sqrt(var + eps)`` (``torch.nn.utils.fusion.fuse_conv_bn_eval``). A folded pass skips one
read and one write of every activation per convolution. Reduced-precision passes (bf16/fp16
autocast, see :mod:`hmsa_core.precision`) run on such a copy whose convolution weights are
already in the run dtype and channels-last, so autocast no longer casts every weight on every
pass. float32 passes keep the original model: folding changes the rounding, and fp32 is the
exact path the golden tests pin.

Which pairs fold is read off the module tree: a ``Conv2d`` followed in a ``Sequential`` by a
``BatchNorm2d`` (or by a ``Sequential`` that starts with one), and ``conv<k>``/``bn<k>``
attribute pairs of one module. Because a naming rule cannot see ``forward``, every folded copy
is checked against the original on a small float32 input before it is used
(:func:`check_folded`); a copy that disagrees is refused and the original model runs.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from hmsa_core.modes import eval_mode

#: Largest relative difference (of the logits' largest magnitude) a folded copy may show
#: against the original, both in float32, before it is refused.
FOLD_TOLERANCE = 1e-4

_CONV_NAME = re.compile(r"conv(\d+)$")


@dataclass(frozen=True)
class FoldedModel:
    """An inference copy of a model.

    Attributes:
        module: the copy (eval mode; conv weights in ``dtype`` and channels-last).
        folded: how many BatchNorms were folded into convolutions.
        dtype: the dtype of its convolution weights.
    """

    module: nn.Module
    folded: int
    dtype: torch.dtype


def _fold_pair(parent: nn.Module, conv_name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> bool:
    """Folds ``bn`` into ``parent.<conv_name>``; returns False when the shapes do not pair."""
    if conv.out_channels != bn.num_features or not bn.track_running_stats:
        return False
    if bn.running_mean is None or bn.running_var is None:
        return False
    setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
    return True


def _fold_sequential(seq: nn.Sequential) -> int:
    """Folds every ``Conv2d`` -> ``BatchNorm2d`` (or -> ``Sequential(BatchNorm2d, ...)``) pair
    of ``seq``; returns how many folded."""
    folded = 0
    children = list(seq._modules.items())
    for (name, module), (next_name, follower) in itertools.pairwise(children):
        if not isinstance(module, nn.Conv2d):
            continue
        if isinstance(follower, nn.BatchNorm2d):
            if _fold_pair(seq, name, module, follower):
                seq._modules[next_name] = nn.Identity()
                folded += 1
        elif isinstance(follower, nn.Sequential) and len(follower) > 0:
            first_name, first = next(iter(follower._modules.items()))
            if isinstance(first, nn.BatchNorm2d) and _fold_pair(seq, name, module, first):
                follower._modules[first_name] = nn.Identity()
                folded += 1
    return folded


def _fold_named_pairs(module: nn.Module) -> int:
    """Folds ``conv<k>``/``bn<k>`` attribute pairs of ``module``; returns how many folded."""
    folded = 0
    for name, child in list(module._modules.items()):
        match = _CONV_NAME.match(name)
        bn_name = f"bn{match.group(1)}" if match else ""
        bn = module._modules.get(bn_name)
        if (
            isinstance(child, nn.Conv2d)
            and isinstance(bn, nn.BatchNorm2d)
            and _fold_pair(module, name, child, bn)
        ):
            module._modules[bn_name] = nn.Identity()
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Returns ``(copy, folded)``: an eval-mode copy of ``model`` with every recognised
    conv -> BatchNorm pair folded, and the number of pairs folded. ``model`` is not changed:
    the copy has its own modules but shares the tensors it does not replace (no second full
    set of weights is ever held)."""
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    replica = copy.deepcopy(model, shared).eval()
    folded = 0
    for module in list(replica.modules()):
        if isinstance(module, nn.Sequential):
            folded += _fold_sequential(module)
        folded += _fold_named_pairs(module)
    return replica, folded


def _cast_convolutions(module: nn.Module, dtype: torch.dtype) -> None:
    """Gives every ``Conv2d``/``Linear`` of ``module`` new ``dtype`` weight and bias parameters
    (conv weights channels-last), leaving the tensors it shares with the original untouched;
    other modules keep float32, as autocast expects."""
    for layer in module.modules():
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            continue
        weight = layer.weight.detach().to(dtype)
        if isinstance(layer, nn.Conv2d):
            weight = weight.contiguous(memory_format=torch.channels_last)
        layer.weight = nn.Parameter(weight, requires_grad=False)
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias.detach().to(dtype), requires_grad=False)


def check_folded(original: nn.Module, folded: nn.Module, side: int) -> float:
    """Returns the largest difference between the float32 logits of ``original`` and
    ``folded`` on a fixed random ``(1, 3, side, 2 * side)`` input, relative to the largest
    logit magnitude (about 1e-7 when the folding is right)."""
    generator = torch.Generator().manual_seed(0)
    device = next(original.parameters()).device
    x = torch.randn((1, 3, side, 2 * side), generator=generator).to(device)
    with torch.no_grad(), _exact_float32(device):
        expected = original(x).logits.float()
        actual = folded(x).logits.float()
    return float((expected - actual).abs().max() / expected.abs().max().clamp_min(1e-12))


def _exact_float32(device: torch.device) -> contextlib.AbstractContextManager:
    """Returns a context with TF32 off on CUDA (cuDNN convolutions default to TF32, whose
    rounding, about 1e-3, would hide a wrong fold or refuse a right one); a no-op elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled,
        benchmark=cudnn.benchmark,
        deterministic=cudnn.deterministic,
        allow_tf32=False,
    )


def pass_module(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """Returns the module a pass in ``dtype`` runs: the folded copy for reduced precision
    (:func:`inference_copy`) when there is one, else ``model`` itself (float32 passes,
    models with hooks, copies refused by :func:`check_folded`)."""
    if dtype is None:
        return model
    folded = inference_copy(model, dtype)
    return model if folded is None else folded.module


def weights_fingerprint(model: nn.Module) -> tuple[int, ...]:
    """Returns a value that changes whenever a parameter or buffer of ``model`` is replaced or
    changed in place (identities and version counters)."""
    tensors = [*model.parameters(), *model.buffers()]
    return (*(id(t) for t in tensors), sum(t._version for t in tensors))


def has_hooks(model: nn.Module) -> bool:
    """Returns True when some module of ``model`` has a forward or forward-pre hook: a caller
    observing the model's own passes, which then must run the model itself, not a copy."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, tuple[tuple, FoldedModel]]]
_COPIES = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def inference_copy(model: nn.Module, dtype: torch.dtype) -> FoldedModel | None:
    """Returns the folded, ``dtype``-weight copy of ``model`` for reduced-precision passes, or
    ``None`` when nothing folds, the folded copy fails :func:`check_folded`, or the model has
    hooks (:func:`has_hooks`); then the original model should run. Built once per model and
    weights version, and rebuilt after the weights change (training, ``load_state_dict``)."""
    if has_hooks(model):
        return None
    fingerprint = weights_fingerprint(model)
    with _LOCK:
        cached = _COPIES.get(model, {}).get(dtype)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        with eval_mode(model):
            replica, folded = fold_batchnorm(model)
            side = max(64, int(getattr(model, "min_input_side", 16)) * 4)
            ok = folded > 0 and check_folded(model, replica, side) <= FOLD_TOLERANCE
        result = None
        if ok:
            _cast_convolutions(replica, dtype)
            result = FoldedModel(module=replica, folded=folded, dtype=dtype)
        _COPIES.setdefault(model, {})[dtype] = (fingerprint, result)  # type: ignore[arg-type]
        return result
