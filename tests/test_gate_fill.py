"""The gated pass's fill computed only where no kept window is pasted (hmsa_core/exact_resize.py,
gated_pass.uncovered_boxes; used where it fills at most half of the pass): a box of a bilinear resize computed from a crop has the same bits
as the whole resize (torch.equal, odd sizes), and a gated cascade that fills only the uncovered
tiles returns exactly what filling everything returns."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hmsa_core
from hmsa_core import gated_pass
from hmsa_core.data.synthscapes import SynthScapes
from hmsa_core.exact_resize import SMALL_OUTPUT_SUM, axis_crop, exact_on, resize_box
from hmsa_core.gating import fill_output
from hmsa_core.models.base import ScaleOutput

# (source size, output size): the 1 -> 2 ratio of a cascade at odd sizes, other exact ratios
SIZES = [
    ((101, 203), (202, 406)),
    ((37, 53), (74, 106)),
    ((33, 65), (66, 130)),
    ((64, 64), (256, 256)),
    ((50, 75), (100, 300)),
]


def _full(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("src", "size"), SIZES)
def test_a_box_resized_from_a_crop_has_the_bits_of_the_whole_resize(src, size, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, 19, *src), generator=gen).to(dtype)
    whole = _full(x, size)
    rng = random.Random(1)
    boxes = [(0, size[0], 0, size[1]), (0, 1, 0, 1), (size[0] - 1, size[0], size[1] - 3, size[1])]
    for _ in range(60):
        top, left = rng.randrange(size[0]), rng.randrange(size[1])
        boxes.append(
            (top, rng.randrange(top + 1, size[0] + 1), left, rng.randrange(left + 1, size[1] + 1))
        )
    for top, bottom, left, right in boxes:
        part = resize_box(x, size, (top, bottom, left, right))
        assert part is not None, (top, bottom, left, right)
        assert torch.equal(part, whole[:, :, top:bottom, left:right]), (top, bottom, left, right)


def test_ratios_and_kernels_it_cannot_reproduce_are_refused():
    x = torch.randn((1, 19, 50, 70))
    assert resize_box(x, (150, 210), (0, 10, 0, 10)) is None  # 1/3: coordinates not exact
    assert axis_crop(50, 150, 0, 10) is None
    assert not exact_on(x, (50, 70))  # same size: no resize
    small = torch.randn((1, 19, 20, 20))
    assert not exact_on(small, (40, 40))  # h + w <= 128: PyTorch's vectorised kernel
    assert SMALL_OUTPUT_SUM >= 40 + 40
    assert not exact_on(x.to(memory_format=torch.channels_last), (100, 140))
    assert exact_on(x, (100, 140))


def test_uncovered_boxes_hold_every_pixel_no_core_covers():
    size, tile = (70, 100), 16  # 5 x 7 tiles, the last row and column clipped
    cores = [(0, 32, 0, 48), (32, 48, 64, 100), (64, 70, 0, 16)]
    boxes = gated_pass.uncovered_boxes(cores, size, tile)
    covered = torch.zeros(size, dtype=torch.bool)
    for t, b, left, r in cores:
        covered[t:b, left:r] = True
    filled = torch.zeros(size, dtype=torch.bool)
    for t, b, left, r in boxes:
        assert t % tile == 0 and left % tile == 0 and b <= size[0] and r <= size[1]
        assert not bool(filled[t:b, left:r].any())  # no box twice
        filled[t:b, left:r] = True
    assert bool((covered | filled).all())
    assert not bool(filled[0:32, 0:48].any())  # whole covered tiles are left out
    assert gated_pass.uncovered_boxes([(0, 70, 0, 100)], size, tile) == []
    overlapping = [(0, 16, 0, 8), (0, 16, 4, 16)]  # the tile (0, 0) is covered once, in two parts
    assert gated_pass.uncovered_boxes(overlapping, (16, 32), 16) == [(0, 16, 16, 32)]
    assert gated_pass.uncovered_boxes([(0, 16, 0, 8)], (16, 32), 16) == [(0, 16, 0, 32)]


def test_fill_output_in_boxes_equals_the_whole_fill_there():
    gen = torch.Generator().manual_seed(2)
    lower = {
        0.5: ScaleOutput(torch.randn((1, 5, 30, 45), generator=gen), torch.rand((1, 1, 30, 45))),
        1.0: ScaleOutput(torch.randn((1, 5, 61, 91), generator=gen), torch.rand((1, 1, 61, 91))),
    }
    size = (122, 182)
    whole = fill_output(lower, size)
    boxes = [(0, 64, 0, 64), (64, 122, 128, 182), (0, 32, 100, 182)]
    part = fill_output(lower, size, boxes)
    for t, b, left, r in boxes:
        assert torch.equal(part.logits[..., t:b, left:r], whole.logits[..., t:b, left:r])
    assert torch.equal(part.attention, whole.attention)


@pytest.mark.parametrize("size", [(127, 253), (128, 256)])
def test_a_gated_cascade_filling_only_uncovered_tiles_is_bit_identical(lite, monkeypatch, size):
    image = SynthScapes("val", 1, size=size)[0].image
    monkeypatch.setattr(gated_pass, "BOXED_FILL_MAX_SHARE", 1.0)  # boxes however much they fill
    options = {
        "model": lite,
        "cache": None,
        "precision": "fp32",
        "gate": 0.9,
        "gate_by": "attention",
        "limits": hmsa_core.InputLimits(gate_tile=32),
    }
    boxed = hmsa_core.infer(image, (0.5, 1.0, 2.0), **options)
    assert 0 < boxed.per_scale[2.0].cost.skipped_fraction < 1  # some tiles skipped, some kept
    calls: list[list] = []
    real = gated_pass._fill_boxes

    def whole_fill(plan, p, windows):
        calls.append(real(plan, p, windows))
        return None  # fill every pixel, as before

    monkeypatch.setattr(gated_pass, "_fill_boxes", whole_fill)
    whole = hmsa_core.infer(image, (0.5, 1.0, 2.0), **options)
    assert calls and any(calls)  # the boxed run had boxes to fill
    assert torch.equal(boxed.logits, whole.logits)
    for s in boxed.scales:
        assert torch.equal(boxed.per_scale[s].logits, whole.per_scale[s].logits)
        assert torch.equal(boxed.per_scale[s].attention, whole.per_scale[s].attention)
    assert np.array_equal(boxed.pred.numpy(), whole.pred.numpy())
