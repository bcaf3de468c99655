"""SynthScapes' instance map and object distances: same pixels as before, one class per
instance, every thing pixel covered; the split module keeps its import names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmsa_core.data.synthscapes import (
    CAR,
    PERSON,
    POLE,
    SIGN,
    SynthScapes,
    _draw_car,
    _draw_person,
    _draw_pole,
    _layout,
    _objects,
    _project,
    _render_background,
    _Street,
    generate_scene,
)

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"
THINGS = (POLE, SIGN, PERSON, CAR)


@pytest.mark.parametrize("i", range(8))
def test_bundled_sample_masks_are_still_reproduced_exactly(i: int) -> None:
    path = SAMPLES / f"synthscapes_val_{i:03d}_mask.png"
    stored = np.asarray(Image.open(path))
    sample = SynthScapes("val", i + 1)[i]
    np.testing.assert_array_equal(sample.mask, stored)


@pytest.mark.parametrize("seed,index", [(0, 0), (0, 10**6 + 5), (3, 17), (11, 10**6 + 99)])
def test_instance_map_agrees_with_the_class_mask_on_every_pixel(seed: int, index: int) -> None:
    s = generate_scene(index, seed, (128, 256))
    assert s.instances is not None and s.instances.shape == s.mask.shape
    assert s.instances.dtype == np.int32
    # Every pixel of a thing class has an instance, and no other pixel has one.
    np.testing.assert_array_equal(s.instances > 0, np.isin(s.mask, THINGS))
    ids = np.unique(s.instances[s.instances > 0])
    for ident in ids:
        assert len(np.unique(s.mask[s.instances == ident])) == 1, ident
    assert s.object_distance is not None
    assert set(ids.tolist()) <= set(s.object_distance)
    assert all(5.0 < z < 150.0 for z in s.object_distance.values())


def test_instances_do_not_change_the_images_or_consume_random_numbers() -> None:
    size = (64, 128)
    scene = generate_scene(4, 0, size)
    rng = np.random.default_rng([0, 4, 0x5C3E])
    street = _layout(rng, size)
    img, mask = _render_background(street, rng, size)
    painters = {"pole": _draw_pole, "person": _draw_person, "car": _draw_car}
    for z, kind, x in _objects(street, rng):
        painters[kind](img, mask, street, rng, x, z)  # no instance record
    np.testing.assert_array_equal(mask, scene.mask)
    assert isinstance(street, _Street) and callable(_project)


def test_camera_offset_zero_is_the_default_view() -> None:
    size = (48, 96)
    a = _render_background(_layout(np.random.default_rng(1), size), np.random.default_rng(2), size)
    b = _render_background(
        _layout(np.random.default_rng(1), size), np.random.default_rng(2), size, camera_z=0.0
    )
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
