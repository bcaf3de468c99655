"""Reduced-precision passes run on a BatchNorm-folded copy that equals the model in float32,
never changes the model, follows its weights, and is refused when the folding would be wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hmsa_core
from hmsa_core.folding import check_folded, fold_batchnorm, inference_copy
from hmsa_core.models import build
from hmsa_core.precision import resolve_precision
from tests.tiny_models import tiny_official


def _randomise_norms(model: nn.Module, seed: int) -> nn.Module:
    """Gives every BatchNorm non-trivial statistics and affine terms (fresh ones are identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def small_official() -> nn.Module:
    return _randomise_norms(tiny_official(5), 1)


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("make", [small_official, lambda: _randomise_norms(build("lite", 5), 2)])
def test_every_norm_folds_and_the_copy_equals_the_model_in_float32(make) -> None:
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    replica, folded = fold_batchnorm(model)
    assert folded == _norms(model) > 0
    assert _norms(replica) == 0
    assert check_folded(model, replica, 64) < 1e-5
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the model itself changed"


def test_the_copy_has_run_dtype_channels_last_weights_and_leaves_the_model_float32() -> None:
    model = small_official()
    copy = inference_copy(model, torch.bfloat16)
    assert copy is not None and copy.dtype == torch.bfloat16
    convs = [m for m in copy.module.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert inference_copy(model, torch.bfloat16) is copy  # built once per weights version


def test_the_copy_is_rebuilt_when_the_weights_change() -> None:
    model = small_official()
    first = inference_copy(model, torch.bfloat16)
    with torch.no_grad():
        next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).running_mean.add_(1.0)
    second = inference_copy(model, torch.bfloat16)
    assert second is not None and second is not first
    model.load_state_dict(small_official().state_dict())
    assert inference_copy(model, torch.bfloat16) is not second


class _NormAfterActivation(nn.Module):
    """``bn1(relu(conv1(x)))``: named like a foldable pair, but the ReLU sits between them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(torch.relu(self.conv1(x)))


def test_a_pair_that_a_name_suggests_but_forward_does_not_apply_is_refused() -> None:
    class Wrapped(nn.Module):
        min_input_side = 16

        def __init__(self) -> None:
            super().__init__()
            self.block = _NormAfterActivation()

        def forward(self, x: torch.Tensor) -> object:  # a ScaleOutput-like result
            return type("Out", (), {"logits": self.block(x)})()

    model = _randomise_norms(Wrapped(), 3)
    replica, folded = fold_batchnorm(model)
    assert folded == 1 and check_folded(model, replica, 16) > 1e-3
    assert inference_copy(model, torch.bfloat16) is None


def test_reduced_precision_runs_the_folded_copy_and_agrees_with_float32() -> None:
    if resolve_precision("auto", torch.device("cpu")) == "fp32":
        pytest.skip("this CPU has no native bfloat16: auto runs float32 on the model itself")
    model = small_official()
    image = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    calls: list[str] = []
    copy = inference_copy(model, torch.bfloat16)
    assert copy is not None

    def recorder(name: str):
        def record(_module, _args, out) -> None:
            if not out.logits.is_meta:  # the FLOP count runs a meta replica, hooks included
                calls.append(name)

        return record

    hook = copy.module.register_forward_hook(recorder("copy"))  # hooks on the copy: not
    try:  # the model's own, so it still runs the copy
        hmsa_core.infer(image, (0.5, 1.0), model=model, precision="auto", cache=None)
        assert calls == ["copy", "copy"]
        exact_only = hmsa_core.infer(image, (0.5, 1.0), model=model, precision="fp32", cache=None)
        assert calls == ["copy", "copy"]
    finally:
        hook.remove()
    fast = hmsa_core.infer(image, (0.5, 1.0), model=model, precision="auto", cache=None)
    scale = float(exact_only.logits.abs().max())
    assert float((fast.logits - exact_only.logits).abs().max()) < 0.05 * scale


def test_a_model_with_hooks_runs_itself_so_the_hooks_see_every_pass() -> None:
    model = small_official()
    seen: list[tuple[int, int]] = []
    handle = model.register_forward_pre_hook(
        lambda _m, args: None if args[0].is_meta else seen.append(tuple(args[0].shape[-2:]))
    )
    try:
        assert inference_copy(model, torch.bfloat16) is None
        image = np.zeros((64, 128, 3), dtype=np.uint8)
        hmsa_core.infer(image, (0.5, 1.0), model=model, precision="auto", cache=None)
    finally:
        handle.remove()
    assert seen == [(32, 64), (64, 128)]
    assert inference_copy(model, torch.bfloat16) is not None
