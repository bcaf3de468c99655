"""Counted FLOPs of the official model agree with DESIGN section 3 (3.06 TFLOP per 1024x2048 pass).

Counted on the meta device by ``hmsa_core.cost`` (FlopCounterMode: convolutions and batched
matmuls, a multiply-add counting 2 FLOPs), so nothing is actually computed.
"""

from __future__ import annotations

import pytest

from hmsa_core.cost import estimate_cascade, estimate_pass
from hmsa_core.models import build
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH

FULL = (1024, 2048)
DESIGN_PASS_FLOPS = 3.06e12
REL = 0.02


@pytest.fixture(scope="module")
def model() -> MultiScaleSegmenter:
    return build(ARCH, 19).eval()


def test_one_full_resolution_pass_is_about_3_06_tflop(model: MultiScaleSegmenter) -> None:
    flops = estimate_pass(model, FULL).flops
    assert flops == pytest.approx(DESIGN_PASS_FLOPS, rel=REL)


@pytest.mark.parametrize(
    ("cascade", "passes"), [((0.5, 1.0, 2.0), 5.25), ((0.25, 0.5, 1.0, 2.0), 5.31)]
)
def test_cascades_cost_the_design_number_of_passes(
    model: MultiScaleSegmenter, cascade: tuple[float, ...], passes: float
) -> None:
    one = estimate_pass(model, FULL).flops
    total = estimate_cascade(model, FULL, cascade).flops
    assert total / one == pytest.approx(passes, rel=REL)


def test_flops_grow_with_the_square_of_the_scale(model: MultiScaleSegmenter) -> None:
    """Nearly all work is convolution, linear in pixels: half the side costs about a quarter."""
    full = estimate_pass(model, FULL).flops
    half = estimate_pass(model, (FULL[0] // 2, FULL[1] // 2)).flops
    assert half / full == pytest.approx(0.25, rel=0.01)


def test_a_replaced_module_invalidates_the_cached_estimate() -> None:
    import torch

    from hmsa_core.cost import _meta_replica

    lite = build("lite", 19).eval()
    before = estimate_pass(lite, (64, 128)).flops
    assert _meta_replica(lite) is _meta_replica(lite)  # built once per module structure
    head = lite.classifier
    lite.classifier = torch.nn.Conv2d(head.in_channels, 4 * head.out_channels, 1)
    after = estimate_pass(lite, (64, 128)).flops
    # the 1x1 classifier runs at 1/4 resolution: 3x more output channels add 2 FLOPs per
    # multiply-add for each new channel, input channel and pixel there
    extra = 2 * head.in_channels * 3 * head.out_channels * (64 // 4) * (128 // 4)
    assert after - before == extra
