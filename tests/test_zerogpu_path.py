"""Hugging Face ZeroGPU support of the Gradio app: the duration asked for follows the
cascade's FLOPs, the ``spaces.GPU`` path is taken only when ``spaces`` is importable, and only
NumPy arrays leave the decorated function."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core
from app.gradio_parts import zerogpu
from hmsa_core.limits import InputLimits

# A stand-in for the ``spaces`` package as ZeroGPU installs it: ``GPU(duration=...)`` returns a
# decorator; this one records the duration each call asks for and what the function returned.
SPACES_SOURCE = textwrap.dedent(
    """
    calls = []

    def GPU(task=None, *, duration=60):
        def decorate(fn):
            def run(*args, **kwargs):
                asked = duration(*args, **kwargs) if callable(duration) else duration
                out = fn(*args, **kwargs)
                calls.append((asked, out))
                return out
            run.zerogpu = True
            return run
        return decorate if task is None else decorate(task)
    """
)


@pytest.fixture(scope="module")
def model():
    return hmsa_core.load_model("hmsa-lite", "cpu")


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(4).integers(0, 256, (64, 96, 3), dtype=np.uint8)


@pytest.fixture
def spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "spaces.py").write_text(SPACES_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    module = zerogpu.spaces_module()
    yield module
    sys.modules.pop("spaces", None)


def test_the_duration_follows_the_flops_within_bounds():
    assert zerogpu.gpu_seconds(0.0) == zerogpu.GPU_MIN_S
    per_second = zerogpu.GPU_TFLOPS * 1000.0
    gflops = per_second * 30  # 30 s of compute
    assert zerogpu.gpu_seconds(gflops) == int(zerogpu.GPU_OVERHEAD_S + 30)
    assert zerogpu.gpu_seconds(1e12) == zerogpu.GPU_MAX_S
    assert zerogpu.gpu_seconds(10.0) <= zerogpu.gpu_seconds(1e5) <= zerogpu.gpu_seconds(1e6)
    with pytest.raises(ValueError, match="finite, non-negative"):
        zerogpu.gpu_seconds(float("nan"))


def test_without_spaces_the_handler_calls_infer_directly(model, image):
    if importlib.util.find_spec("spaces") is not None:
        pytest.skip("the spaces package is installed here")
    assert zerogpu.spaces_module() is None and zerogpu.RUNNER is None
    assert zerogpu.gpu_runner(None) is None
    result = zerogpu.infer(
        image, (0.5, 1.0), model=model, method="hierarchical", precision="fp32", gate=0.0,
        limits=InputLimits(), spaces=True,
    )  # fmt: skip
    direct = hmsa_core.infer(image, (0.5, 1.0), model=model, precision="fp32", cache=None)
    assert torch.equal(result.logits, direct.logits)


def test_with_spaces_the_model_runs_under_gpu_and_only_arrays_leave(model, image, spaces):
    assert spaces is not None
    runner = zerogpu.gpu_runner(spaces)
    assert getattr(runner, "zerogpu", False)  # decorated by spaces.GPU
    result = zerogpu.infer(
        image, (0.5, 1.0, 2.0), model=model, method="hierarchical", precision="fp32",
        gate=0.0, limits=InputLimits(), spaces=spaces,
    )  # fmt: skip
    ((asked, returned),) = spaces.calls
    gflops = hmsa_core.estimate_cascade(model, image.shape[:2], (0.5, 1.0, 2.0)).gflops
    assert asked == zerogpu.gpu_seconds(gflops)

    def tensors(value) -> list:
        if isinstance(value, torch.Tensor):
            return [value]
        if isinstance(value, dict):
            return [t for v in value.values() for t in tensors(v)]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in tensors(v)]
        return []

    assert tensors(returned) == []
    assert isinstance(returned["logits"], np.ndarray)
    direct = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, precision="fp32", cache=None)
    assert torch.equal(result.logits, direct.logits)
    assert torch.equal(result.pred, direct.pred)
    for s in direct.scales:
        assert torch.equal(result.per_scale[s].output.logits, direct.per_scale[s].output.logits)
        assert torch.equal(result.weights[s], direct.weights[s])
    assert result.cost.per_scale[0].flops == direct.cost.per_scale[0].flops
