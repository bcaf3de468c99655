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
