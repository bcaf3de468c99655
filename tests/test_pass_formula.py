"""The traced pass formula: one meta pass per model, then FLOPs and peak activation bytes of
any size exactly as a fresh count gives them (odd sizes, where pixel-count scaling is wrong)."""

from __future__ import annotations

import pytest

from hmsa_core.cost import _meta_replica, count_pass, estimate_pass
from hmsa_core.models import build
from hmsa_core.models.mscale_ocr import ARCH
from hmsa_core.pass_formula import trace
from tests.tiny_models import tiny_official

ODD_SIZES = [(97, 301), (150, 250), (333, 517), (37, 53)]


@pytest.mark.parametrize("name", [ARCH, "lite", "explicit_lite", "tiny"])
def test_the_formula_equals_a_fresh_count_at_odd_sizes(name):
    model = tiny_official() if name == "tiny" else build(name, 19).eval()
    formula = trace(_meta_replica(model))
    assert formula is not None, "the model's passes should be expressible as a formula"
    for size in ODD_SIZES:
        fresh = count_pass(model, size)
        assert formula.count(size) == (fresh.flops, fresh.activation_bytes), size
        assert estimate_pass(model, size) == fresh


def test_scaling_by_pixel_count_alone_would_be_wrong_at_odd_sizes():
    model = tiny_official()
    a, b = count_pass(model, (97, 301)), count_pass(model, (194, 602))
    assert b.flops != 4 * a.flops  # so the test above checks more than a pixel-count rule
