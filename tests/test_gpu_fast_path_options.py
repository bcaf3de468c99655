"""The opt-in GPU fast path: its options are checked, small scales are picked by input area,
and on a machine without CUDA it is refused with the fix (the CUDA paths themselves are
measured by scripts/gpu_check.sh on a GPU machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hmsa_core
from hmsa_core.fastpath import FastPathOptions, check_device, small_scales


def test_options_are_validated():
    with pytest.raises(ValueError, match="fast-path mode must be one of"):
        FastPathOptions(mode="turbo")
    with pytest.raises(ValueError, match="small_pixels must be >= 0"):
        FastPathOptions(small_pixels=-1)


def test_small_scales_are_those_at_or_below_the_pixel_budget():
    sizes = {0.25: (256, 512), 0.5: (512, 1024), 1.0: (1024, 2048), 2.0: (2048, 4096)}
    assert small_scales(sizes, FastPathOptions(small_pixels=512 * 1024)) == (0.25, 0.5)
    assert small_scales(sizes, FastPathOptions(small_pixels=0)) == ()


def test_the_fast_path_is_refused_off_cuda_with_the_fix():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        check_device(torch.device("cpu"))
    model = hmsa_core.load_model("hmsa-lite", "cpu")
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="drop fast_path"):
        hmsa_core.infer(image, (1.0,), model=model, cache=None, fast_path=FastPathOptions())
