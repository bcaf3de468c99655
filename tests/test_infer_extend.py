"""`hmsa_core.extend`: growing a held result's cascade runs only the scales it lacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hmsa_core


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class _PassCounter:
    """Counts the forward passes of a model (a forward hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.scales: list[tuple[int, int]] = []
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, _module, inputs, _output) -> None:
        self.scales.append(tuple(inputs[0].shape[-2:]))


def test_extend_runs_only_the_scales_the_base_lacks(model):
    image = _rgb(32, 48, seed=4)
    base = hmsa_core.extend(None, image, (0.5, 1.0), model, cache=None, precision="fp32")
    counter = _PassCounter(model)
    seen: list[tuple[float, int, int, bool]] = []
    grown = hmsa_core.extend(
        base, image, (0.5, 1.0, 2.0), model, method="mean", cache=None, precision="fp32",
        progress=lambda *args: seen.append(args),
    )  # fmt: skip
    assert counter.scales == [(64, 96)]  # only the 2.0 pass, although no cache holds the others
    assert grown.scales == (0.5, 1.0, 2.0) and grown.method == "mean"
    assert grown.cost.cached_scales == (0.5, 1.0)
    assert [(s, i, t, c) for s, i, t, c in seen] == [
        (0.5, 0, 3, True), (1.0, 1, 3, True), (2.0, 2, 3, False)
    ]  # fmt: skip
    for scale in (0.5, 1.0):  # the held outputs themselves, not recomputed copies
        assert grown.per_scale[scale].output is base.per_scale[scale].output
    again = hmsa_core.extend(grown, image, (1.0, 2.0), model, cache=None, precision="fp32")
    assert len(counter.scales) == 1  # a subset of the held scales: no pass at all
    assert again.scales == (1.0, 2.0) and again.method == "hierarchical"
    counter.handle.remove()
    full = hmsa_core.infer(
        image, (0.5, 1.0, 2.0), model=model, method="mean", cache=None, precision="fp32"
    )
    assert torch.allclose(grown.logits, full.logits, atol=1e-5)
    assert torch.equal(grown.pred, full.pred)


def test_extend_refuses_a_base_of_another_image_and_bad_cascades(model):
    base = hmsa_core.extend(None, _rgb(32, 48, seed=1), (1.0,), model, cache=None)
    with pytest.raises(ValueError, match="another image"):
        hmsa_core.extend(base, _rgb(32, 48, seed=2), (1.0, 2.0), model, cache=None)
    with pytest.raises(ValueError, match="empty"):
        hmsa_core.extend(base, _rgb(32, 48, seed=1), (), model, cache=None)
