"""Hugging Face ZeroGPU support of the Gradio app, with the real ``spaces`` package (the optional
extra ``zerogpu``): the duration asked for follows the planned FLOPs, outside a ZeroGPU Space
``spaces.GPU`` leaves the function working and the app runs the model directly, and only NumPy
arrays leave the decorated function (flipped passes included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hmsa_core
from app.gradio_parts import zerogpu
from hmsa_core.options import InferOptions
from tests.tiny_models import noise_rgb

spaces = pytest.importorskip("spaces", reason="the optional extra 'zerogpu' is not installed")


@pytest.fixture(scope="module")
def model():
    """The bundled, trained ``hmsa-lite`` on the CPU (one copy per module)."""
    return hmsa_core.load_model("hmsa-lite", "cpu")


#: The test image: ``(64, 96, 3)`` uint8 noise.
IMAGE = noise_rgb((64, 96), seed=4)


def tensors(value) -> list:
    """Returns every tensor inside ``value`` (dicts, lists, tuples and dataclass-free values)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors(v)]
    return []


def test_the_duration_follows_the_flops_within_bounds():
    assert zerogpu.gpu_seconds(0.0) == zerogpu.GPU_MIN_S
    per_second = zerogpu.GPU_TFLOPS * 1000.0
    gflops = per_second * 30  # 30 s of compute
    assert zerogpu.gpu_seconds(gflops) == int(zerogpu.GPU_OVERHEAD_S + 30)
    assert zerogpu.gpu_seconds(1e12) == zerogpu.GPU_MAX_S
    assert zerogpu.gpu_seconds(10.0) <= zerogpu.gpu_seconds(1e5) <= zerogpu.gpu_seconds(1e6)
    with pytest.raises(ValueError, match="finite, non-negative"):
        zerogpu.gpu_seconds(float("nan"))


def test_outside_a_zerogpu_space_the_decorated_function_works_and_the_app_runs_directly(
    model,
):
    assert zerogpu.spaces_module() is spaces
    decorated = spaces.GPU(duration=zerogpu._duration)(zerogpu._infer_arrays)
    options = InferOptions(precision="fp32")
    data = decorated(IMAGE, (0.5, 1.0), model, "hierarchical", options)  # still a function
    assert tensors(data) == [] and isinstance(data["logits"], np.ndarray)
    assert zerogpu.gpu_runner(spaces) is None and zerogpu.RUNNER is None  # so: direct
    reported: list[tuple[float, int, int, bool]] = []
    result = zerogpu.infer(
        IMAGE,
        (0.5, 1.0),
        model=model,
        method="hierarchical",
        options=options,
        progress=lambda *a: reported.append(a),
    )
    direct = hmsa_core.infer(IMAGE, (0.5, 1.0), model=model, precision="fp32", cache=None)
    assert torch.equal(result.logits, direct.logits)
    assert torch.equal(torch.from_numpy(data["logits"]), direct.logits)
    assert [(s, i, n) for s, i, n, _ in reported] == [(0.5, 0, 2), (1.0, 1, 2)]


def test_the_arrays_round_trip_keeps_every_pass_with_flip(model):
    options = InferOptions(precision="fp32", flip=True)
    data = zerogpu._infer_arrays(IMAGE, (0.5, 1.0, 2.0), model, "hierarchical", options)
    assert tensors(data) == []
    size = IMAGE.shape[:2]
    planned = hmsa_core.plan_cascade(model, size, (0.5, 1.0, 2.0), options).flops / 1e9
    assert zerogpu._duration(IMAGE, (0.5, 1.0, 2.0), model, "hierarchical", options) == (
        zerogpu.gpu_seconds(planned)
    )
    result = zerogpu.result_from_arrays(data)
    direct = hmsa_core.infer(IMAGE, (0.5, 1.0, 2.0), model=model, options=options, cache=None)
    assert result.flip and result.has_flips
    assert torch.equal(result.logits, direct.logits) and torch.equal(result.pred, direct.pred)
    for s in direct.scales:
        assert torch.equal(result.per_scale[s].logits, direct.per_scale[s].logits)
        assert torch.equal(result.per_scale[s].flipped_logits, direct.per_scale[s].flipped_logits)
        assert torch.equal(result.weights[s], direct.weights[s])
    assert [c.flipped for c in result.cost.per_scale] == [False, True] * 3
    unflipped = result.remerge(flip=False)  # the held flips are optional, as after infer
    assert torch.equal(unflipped.logits, direct.remerge(flip=False).logits)
