"""Real photographs among the bundled samples: copies of scikit-image's own files, listed after
the labelled street scenes with readable labels that say they have no ground truth, and usable
in the explorer without a mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import common

PHOTOS = {
    "photo_astronaut": "astronaut.png",
    "photo_chelsea": "chelsea.png",
    "photo_coffee": "coffee.png",
    "photo_rocket": "rocket.jpg",
}
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"


def test_bundled_photos_are_scikit_image_files_without_masks_listed_last():
    samples = common.list_samples(common.SAMPLES_DIR)
    photos = [s for s in samples if s.name.startswith(common.PHOTO_PREFIX)]
    assert {s.name for s in photos} == set(PHOTOS)
    assert samples[-len(photos) :] == photos  # street scenes with masks come first
    readme = (common.SAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    for sample in photos:
        assert sample.mask_path is None
        assert sample.label == f"Photo: {sample.name.removeprefix('photo_')} (no ground truth)"
        assert sample.image_path.name in readme and PHOTOS[sample.name] in readme
        original = SKIMAGE_DATA / PHOTOS[sample.name]
        if not original.is_file():
            continue  # a scikit-image without that file: the copy stands alone
        ours = np.asarray(Image.open(sample.image_path).convert("RGB"), dtype=np.float64)
        theirs = np.asarray(Image.open(original).convert("RGB"), dtype=np.float64)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).mean() < 4.0  # JPEG quality 90 of the same pixels


@pytest.mark.parametrize(
    ("name", "has_mask", "label"),
    [
        ("synthscapes_val_003", True, "Street scene (SynthScapes val 3)"),
        ("synthscapes_val_012", False, "Street scene (SynthScapes val 12, no ground truth)"),
        ("photo_astronaut", False, "Photo: astronaut (no ground truth)"),
        ("photo_red_car", True, "Photo: red car"),
        ("my_street_scene", False, "my street scene (no ground truth)"),
        ("synthscapes_weird", True, "synthscapes weird"),
    ],
)
def test_sample_labels_are_readable(name, has_mask, label):
    assert common.sample_label(name, has_mask) == label


def test_jpeg_samples_are_listed_once_per_stem(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.jpg")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpeg")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "a_mask.png")
    (tmp_path / "c.gif").write_bytes(b"GIF89a")
    samples = common.list_samples(tmp_path)
    assert [(s.name, s.image_path.name) for s in samples] == [("a", "a.jpeg"), ("b", "b.jpg")]
    assert samples[0].mask_path == tmp_path / "a_mask.png"


def test_the_explorer_shows_a_photo_without_scores(monkeypatch, tmp_path):
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"image": "photo_chelsea", "tab": "IoU", "cascade": "0.5,1"})
    at.run()
    assert not at.exception and not at.error and not at.warning
    sample = at.selectbox(key="sample_name")
    assert sample.value == "photo_chelsea"
    assert "Photo: chelsea (no ground truth)" in sample.options
    assert "Street scene (SynthScapes val 0)" in sample.options
    assert any("No ground truth for this image" in c for c in at.caption.values)
    assert any("No ground-truth mask" in i.value for i in at.info)
