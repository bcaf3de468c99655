"""SynthScapes: deterministic, well-formed street scenes with thin poles and disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hmsa_core.data.synthscapes import (
    CLASSES,
    POLE,
    VAL_OFFSET,
    SynthScapes,
    generate_scene,
    main,
)
from hmsa_core.labels import CITYSCAPES

SIZE = (256, 512)


def test_same_arguments_give_the_same_scene() -> None:
    a = generate_scene(7, seed=3, size=SIZE)
    b = generate_scene(7, seed=3, size=SIZE)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    c = generate_scene(8, seed=3, size=SIZE)
    d = generate_scene(7, seed=4, size=SIZE)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, d.image)


def test_scene_has_the_documented_form() -> None:
    s = generate_scene(0)
    assert s.image.shape == (512, 1024, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (512, 1024) and s.mask.dtype == np.int64
    assert s.name == "synthscapes/train/0"
    assert set(np.unique(s.mask).tolist()) <= set(CLASSES)
    CITYSCAPES.validate_mask(s.mask)
    small = generate_scene(1, size=(40, 90))
    assert small.image.shape == (40, 90, 3)


def test_every_required_class_appears_over_a_few_scenes() -> None:
    seen: set[int] = set()
    for sample in SynthScapes("val", 6, SIZE):
        seen |= set(np.unique(sample.mask).tolist())
    names = {CITYSCAPES.names[c] for c in seen}
    for required in (
        "road",
        "sidewalk",
        "building",
        "wall",
        "pole",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "car",
    ):
        assert required in names


def test_train_and_val_never_share_a_scene() -> None:
    train, val = SynthScapes("train", 5, SIZE), SynthScapes("val", 5, SIZE)
    assert {train.index_of(i) for i in range(5)}.isdisjoint({val.index_of(i) for i in range(5)})
    assert val.index_of(0) == VAL_OFFSET
    assert not np.array_equal(train[0].image, val[0].image)
    assert val[1].name == "synthscapes/val/1"
    np.testing.assert_array_equal(val[-1].mask, val[4].mask)
    assert len(val[1:3]) == 2


def _pole_run_widths(mask: np.ndarray) -> list[int]:
    """Returns the widths of horizontal runs of pole pixels in every row."""
    widths = []
    for row in mask == POLE:
        padded = np.concatenate([[False], row, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        widths += (edges[1::2] - edges[::2]).tolist()
    return widths


def test_poles_are_thin() -> None:
    widths = []
    for i in range(3):
        scene_widths = _pole_run_widths(generate_scene(VAL_OFFSET + i).mask)
        assert scene_widths, "every scene has poles"
        widths += scene_widths
    widths_arr = np.asarray(widths)
    assert widths_arr.min() >= 1
    assert np.mean(widths_arr <= 4) > 0.9  # overlapping poles may merge into wider runs
    assert np.any(widths_arr <= 2)


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="index"):
        generate_scene(-1)
    with pytest.raises(ValueError, match="size"):
        generate_scene(0, size=(8, 8))
    with pytest.raises(ValueError, match="split"):
        SynthScapes("test")
    with pytest.raises(IndexError):
        SynthScapes("val", 2, SIZE)[2]


def test_write_samples_cli_writes_image_and_palette_mask(tmp_path) -> None:
    main(["--write-samples", str(tmp_path), "--count", "2", "--size", "128x256"])
    image = tmp_path / "synthscapes_val_000.png"
    mask = tmp_path / "synthscapes_val_000_mask.png"
    assert image.is_file() and mask.is_file()
    with Image.open(mask) as m:
        assert m.mode == "P"
        ids = np.asarray(m)
    expected = SynthScapes("val", 1, (128, 256))[0]
    np.testing.assert_array_equal(ids, expected.mask)
    with Image.open(image) as im:
        assert im.size == (256, 128)
