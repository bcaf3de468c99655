"""Flip as a pass (DESIGN 1.6): every scale also runs on the mirrored image, the result is the
mean of the two merges, and ``remerge`` takes the flips in or out without a pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hmsa_core
from hmsa_core.labels import CITYSCAPES
from hmsa_core.merge import merge
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, rescale_input

CASCADE = (0.5, 1.0, 2.0)


class Pointwise(MultiScaleSegmenter):
    """A model of 1x1 convolutions: its output mirrors exactly with its input."""

    arch = "pointwise"

    def __init__(self) -> None:
        super().__init__(CITYSCAPES)
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, CITYSCAPES.num_classes, 1)
        self.attn = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        return ScaleOutput(logits=self.head(x), attention=torch.sigmoid(self.attn(x)))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)


def _run(model, image, flip, **kw):
    return hmsa_core.infer(
        image, CASCADE, model=model, precision="fp32", cache=None, flip=flip, **kw
    )


def test_a_mirror_symmetric_model_gives_the_same_flipped_and_plain_logits(image):
    model = Pointwise().eval()
    result = _run(model, image, True)
    for s in CASCADE:
        r = result.per_scale[s]
        assert r.flipped_logits is not None and r.flipped_attention is not None
        torch.testing.assert_close(r.flipped_logits, r.logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(r.flipped_attention, r.attention, rtol=0, atol=1e-6)
    plain = result.remerge(flip=False)
    torch.testing.assert_close(result.logits, plain.logits, rtol=0, atol=1e-5)


def test_flip_merges_to_the_mean_of_the_plain_and_the_mirrored_merge(lite, image):
    result = _run(lite, image, True)
    prepared = hmsa_core.prepare_input(image, lite)
    x = torch.flip(prepared.tensor, (-1,))
    mirrored = {}
    with torch.no_grad():
        for s in CASCADE:
            out = lite(rescale_input(x, s))
            mirrored[s] = ScaleOutput(
                logits=torch.flip(out.logits, (-1,)), attention=torch.flip(out.attention, (-1,))
            )
    flipped_merge = merge(mirrored, output_size=prepared.size).logits[0]
    plain_merge = merge(result.per_scale, output_size=prepared.size).logits[0]
    assert not torch.allclose(flipped_merge, plain_merge, atol=1e-3)  # lite is not symmetric
    torch.testing.assert_close(result.logits, (plain_merge + flipped_merge) / 2)
    for s in CASCADE:
        torch.testing.assert_close(result.per_scale[s].flipped_logits, mirrored[s].logits[0])
    weights = sum(result.weights.values())
    torch.testing.assert_close(weights, torch.ones_like(weights))


def test_remerge_with_and_without_flips_from_one_held_result(lite, image):
    with_flip = _run(lite, image, True)
    without = _run(lite, image, False)
    assert with_flip.flip and with_flip.has_flips and not without.flip
    assert torch.equal(with_flip.remerge(flip=False).logits, without.logits)
    assert torch.equal(with_flip.remerge(flip=True).logits, with_flip.logits)
    assert torch.equal(with_flip.remerge().logits, with_flip.logits)
    two = with_flip.remerge("mean", (1.0, 2.0), flip=True)
    assert two.scales == (1.0, 2.0) and two.flip and len(two.cost.per_scale) == 4
    with pytest.raises(ValueError, match="flip=True"):
        without.remerge(flip=True)


def test_flip_false_is_bit_identical_to_plain_passes_and_merge(lite, image):
    result = _run(lite, image, False)
    prepared = hmsa_core.prepare_input(image, lite)
    with torch.no_grad():
        outputs = {s: lite(rescale_input(prepared.tensor, s)) for s in CASCADE}
    expected = merge(outputs, output_size=prepared.size)
    assert torch.equal(result.logits, expected.logits[0])
    for s in CASCADE:
        assert torch.equal(result.weights[s], expected.weights[s][0])
        assert result.per_scale[s].flipped_pass is None


def test_cost_and_plan_count_the_flipped_passes(lite, image):
    result = _run(lite, image, True)
    plain = _run(lite, image, False)
    flags = [c.flipped for c in result.cost.per_scale]
    assert flags == [False, True] * len(CASCADE)
    assert result.cost.flops == 2 * plain.cost.flops
    options = hmsa_core.InferOptions(precision="fp32", flip=True)
    plan = hmsa_core.plan_cascade(lite, image.shape[:2], CASCADE, options)
    assert [(p.scale, p.flip) for p in plan.passes] == [(s, f) for s in CASCADE for f in (0, 1)]
    assert plan.flops == result.cost.flops


def test_extend_and_the_cache_keep_flipped_passes_apart(lite, image):
    cache = hmsa_core.cache.ByteLRUCache(1 << 30)
    plain = hmsa_core.infer(image, CASCADE, model=lite, precision="fp32", cache=cache)
    flipped = hmsa_core.infer(image, CASCADE, model=lite, precision="fp32", cache=cache, flip=True)
    assert [c.cached for c in flipped.cost.per_scale] == [True, False] * len(CASCADE)
    assert not torch.equal(flipped.logits, plain.logits)
    seen = []
    grown = hmsa_core.extend(
        plain,
        image,
        CASCADE,
        lite,
        precision="fp32",
        flip=True,
        cache=None,
        progress=lambda s, i, n, cached: seen.append((s, i, n, cached)),
    )
    assert torch.equal(grown.logits, flipped.logits)
    assert [c for *_, c in seen] == [True] * 3 + [False] * 3  # held passes first
    assert [i for _, i, _, _ in seen] == list(range(6)) and {n for *_, n, _ in seen} == {6}
