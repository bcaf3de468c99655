"""Confidence maps as the front ends draw them (analysis/where_views.py): the grid's heatmaps
hold exactly the confidence of the pixels they show, for the merged result and every scale, and
the colour image spans the map's fixed range."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from analysis.figures import ATTENTION_SCALE, heatmap_rgb
from analysis.where_views import (
    confidence_grid_figure,
    confidence_image,
    confidence_png_bytes,
    confidence_range,
)
from hmsa_core.confidence import confidence_maps, result_confidence
from tests.tiny_models import noise_result

SIZE = (40, 72)


@pytest.fixture(scope="module")
def result(model) -> hmsa_core.InferenceResult:
    return noise_result(model, SIZE, seed=1)


def test_grid_shows_merged_then_every_scale_with_the_exact_values(result) -> None:
    side = 32  # forces a stride on every map: 72 / 32 -> every 3rd pixel at 1.0
    fig = confidence_grid_figure(result, ("top_prob", "entropy"), heatmap_side=side)
    assert len(fig.data) == 2 * 4  # (merged + 3 scales) x 2 maps
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:2] == ["top probability · merged (hierarchical)", "entropy (nats) · merged (hierarchical)"]  # fmt: skip
    assert titles[-1] == "entropy (nats) · scale 2"
    for row, scale in enumerate((None, 0.5, 1.0, 2.0)):
        full = result_confidence(result, scale)
        for col, kind in enumerate(("top_prob", "entropy")):
            trace = fig.data[2 * row + col]
            values = full.as_dict()[kind].numpy()
            step = trace.dx
            assert step == math.ceil(max(values.shape) / side)
            np.testing.assert_allclose(np.asarray(trace.z), values[::step, ::step], rtol=1e-5)
            assert trace.coloraxis == ("coloraxis" if col == 0 else "coloraxis2")
    assert fig.layout.coloraxis2.cmax == pytest.approx(math.log(19))
    assert fig.layout.coloraxis.cmin == 0.0 and fig.layout.coloraxis.cmax == 1.0


def test_confidence_image_is_the_map_on_its_fixed_range(result) -> None:
    image = confidence_image(result, "margin")
    assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
    margin = result_confidence(result).margin
    np.testing.assert_array_equal(image, heatmap_rgb(margin, 0.0, 1.0, ATTENTION_SCALE))
    own = confidence_image(result, "entropy", scale=0.5)
    assert own.shape[:2] == tuple(result.per_scale[0.5].logits.shape[-2:])
    png = Image.open(io.BytesIO(confidence_png_bytes(result)))
    assert png.size == (SIZE[1], SIZE[0]) and png.mode == "RGB"


def test_a_certain_pixel_is_bright_and_a_uniform_one_dark() -> None:
    logits = torch.zeros(19, 1, 2)
    logits[3, 0, 0] = 50.0  # certain at (0, 0), uniform at (0, 1)
    maps = confidence_maps(logits)
    bright, dark = heatmap_rgb(maps.top_prob, *confidence_range("top_prob", 19))[0]
    assert bright.sum() > dark.sum()
    assert confidence_range("entropy", 19) == (0.0, pytest.approx(math.log(19)))


def test_bad_kinds_say_which_exist(result) -> None:
    with pytest.raises(ValueError, match="top_prob, margin, entropy"):
        confidence_image(result, "certainty")
    with pytest.raises(ValueError, match="at least one"):
        confidence_grid_figure(result, ())
