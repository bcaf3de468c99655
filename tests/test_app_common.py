"""The app-side glue both front ends share (app/common.py): models, images, masks, cascades."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hmsa_core
from app import common
from hmsa_core.api import BUNDLED_MODELS
from hmsa_core.checkpoints.native import save_native
from hmsa_core.labels import CITYSCAPES


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def empty_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("HMSA_MODELS_DIR", str(folder))
    return folder


# --------------------------------------------------------------------------- models


def test_every_bundled_model_is_listed_as_trained(empty_models_dir):
    entries = {e.name: e for e in common.list_models()}
    for bundled in BUNDLED_MODELS:
        assert entries[bundled].kind == "bundled" and entries[bundled].error is None


def test_checkpoints_in_the_models_dir_are_listed_with_label_set_and_parameters(empty_models_dir):
    model = hmsa_core.build("lite", num_classes=19)
    save_native(model, empty_models_dir / "mine.safetensors")
    (empty_models_dir / "broken.pth").write_bytes(b"not a checkpoint")
    entries = {e.name: e for e in common.list_models()}
    mine = entries["mine.safetensors"]
    assert mine.kind == "native"
    assert mine.parameter_count == model.parameter_count()
    assert "cityscapes" in common.describe_model(mine)
    assert common.format_count(model.parameter_count()) in common.describe_model(mine)
    with pytest.raises(ValueError, match="cannot be loaded"):
        common.get_model(entries["broken.pth"])


def test_get_model_loads_once_and_reloads_when_the_file_changes(empty_models_dir):
    path = save_native(hmsa_core.build("lite", num_classes=19), empty_models_dir / "m.safetensors")
    first = common.get_model("m.safetensors")
    assert common.get_model("m.safetensors") is first
    assert not first.training
    save_native(hmsa_core.build("lite", num_classes=19), path)
    assert common.get_model("m.safetensors") is not first


def test_unknown_model_name_is_a_value_error(empty_models_dir):
    with pytest.raises(ValueError, match="no model named"):
        common.get_model("does-not-exist")


def test_training_note_tells_bundled_models_are_synthetic(empty_models_dir):
    bundled = [e for e in common.list_models() if e.kind == "bundled"]
    note = common.training_note(bundled[0])
    assert "SynthScapes" in note and "'cityscapes'" in note


def test_method_options_follow_the_model():
    hmsa = hmsa_core.build("lite", num_classes=19)
    explicit = hmsa_core.build("explicit_lite", num_classes=19)
    assert common.method_options(hmsa, (0.5, 1.0))[0] == "hierarchical"
    assert "explicit" not in common.method_options(hmsa, (0.5, 1.0))
    options = common.method_options(explicit, (0.5, 1.0, 2.0))
    assert options[0] == "explicit" and "hierarchical" not in options
    assert options[-3:] == ["single:0.5", "single:1", "single:2"]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("size", [(40, 90), (90, 40), (64, 64), (33, 17)])
@pytest.mark.parametrize("max_side", [16, 32, 1024])
def test_read_image_fits_the_maximum_side(size, max_side):
    loaded = common.load_image(_png(_rgb(*size)), max_side)
    assert loaded.original_size == size
    assert loaded.size == common.fitted_size(size, max_side)
    assert max(loaded.size) <= max(max_side, 1)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (*loaded.size, 3)
    assert loaded.resized == (max(size) > max_side)


def test_read_image_returns_pixels_unchanged_when_small():
    rgb = _rgb(20, 30)
    assert np.array_equal(common.read_image(_png(rgb), 1024), rgb)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_read_image_refuses_non_images(data):
    with pytest.raises(ValueError):
        common.read_image(data, 1024)


def test_read_image_refuses_too_many_pixels(monkeypatch):
    monkeypatch.setenv("HMSA_MAX_PIXELS", "500")
    with pytest.raises(ValueError, match="too large"):
        common.read_image(_png(_rgb(30, 30)), 1024)


def test_image_key_identifies_pixels():
    a, b = _rgb(8, 8, 1), _rgb(8, 8, 2)
    assert common.image_key(a) == common.image_key(a.copy())
    assert common.image_key(a) != common.image_key(b)


# --------------------------------------------------------------------------- masks


def test_read_mask_at_image_size():
    mask = np.random.default_rng(0).integers(0, 19, (12, 20), dtype=np.uint8)
    gt = common.read_mask(_png(mask), (12, 20), CITYSCAPES)
    assert gt is not None and gt.dtype == np.int64
    assert np.array_equal(gt, mask)


def test_read_mask_at_original_size_is_resized_keeping_ids():
    mask = np.zeros((40, 80), dtype=np.uint8)
    mask[:, 40:] = 13
    mask[:5] = 255
    gt = common.read_mask(_png(mask), (20, 40), CITYSCAPES, original_size=(40, 80))
    assert gt is not None and gt.shape == (20, 40)
    assert set(np.unique(gt)) == {0, 13, 255}


def test_read_mask_of_another_size_is_refused():
    mask = np.zeros((10, 10), dtype=np.uint8)
    with pytest.raises(ValueError, match="mask is 10 x 10"):
        common.read_mask(_png(mask), (20, 40), CITYSCAPES, original_size=(40, 80))
    with pytest.raises(ValueError, match="mask is 10 x 10"):
        common.read_mask(_png(mask), (20, 40), CITYSCAPES)


def test_read_mask_with_unknown_class_ids_is_refused():
    mask = np.full((8, 8), 40, dtype=np.uint8)
    with pytest.raises(ValueError, match="40"):
        common.read_mask(_png(mask), (8, 8), CITYSCAPES)


def test_read_mask_of_nothing_is_none():
    assert common.read_mask(None, (8, 8), CITYSCAPES) is None


def test_read_mask_refuses_a_non_image():
    with pytest.raises(ValueError):
        common.read_mask(b"plain text", (8, 8), CITYSCAPES)


# --------------------------------------------------------------------------- samples


def test_list_samples_pairs_images_with_masks(tmp_path, monkeypatch):
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "b_scene.png")
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "a_scene.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a_scene_mask.png")
    (tmp_path / "notes.txt").write_text("ignored")
    monkeypatch.setenv(common.SAMPLES_DIR_ENV, str(tmp_path))
    samples = common.list_samples()
    assert [s.name for s in samples] == ["a_scene", "b_scene"]
    assert samples[0].mask_path == tmp_path / "a_scene_mask.png"
    assert samples[1].mask_path is None


def test_list_samples_of_a_missing_folder_is_empty(tmp_path):
    assert common.list_samples(tmp_path / "nowhere") == []


def test_bundled_samples_have_masks_unless_labelled_as_photos_without_ground_truth():
    for sample in common.list_samples(common.SAMPLES_DIR):
        if sample.name.startswith(common.PHOTO_PREFIX):
            assert sample.mask_path is None and "no ground truth" in sample.label, sample.name
        else:
            assert sample.mask_path is not None, sample.name


# --------------------------------------------------------------------------- cascades


def test_build_cascade_unites_toggles_and_free_text():
    assert common.build_cascade((1.0, 0.5), "2, 0.5 0.33") == (0.33, 0.5, 1.0, 2.0)
    assert common.format_cascade((0.25, 1.0)) == "0.25, 1"


@pytest.mark.parametrize(
    ("toggled", "extra", "message"),
    [
        ((), "", "empty"),
        ((0.5,), "abc", "not a number"),
        ((0.5,), "5", "above the maximum"),
        ((0.5,), "-1", "greater than 0"),
        ((0.5,), "nan", "finite"),
    ],
)
def test_build_cascade_refuses_bad_scales(toggled, extra, message):
    with pytest.raises(ValueError, match=message):
        common.build_cascade(toggled, extra)


def test_build_cascade_refuses_scales_too_small_for_the_image():
    with pytest.raises(ValueError, match="minimum side"):
        common.build_cascade((0.25, 1.0), "", image_size=(20, 40), min_side=8)
    assert common.build_cascade((0.5, 1.0), "", image_size=(20, 40), min_side=8) == (0.5, 1.0)


# --------------------------------------------------------------------------- inference


# --------------------------------------------------------------------------- cost display


@pytest.mark.parametrize(
    ("gflops", "shown"),
    [
        (2103.9, "2.10 TFLOPs"),
        (45.31, "45.3 GFLOPs"),
        (812.4, "812 GFLOPs"),
        (999.96, "1.00 TFLOPs"),
        (0.0123, "12.3 MFLOPs"),
        (3.2e6, "3.20 PFLOPs"),
        (0.0, "0 FLOPs"),
        (float("nan"), "unknown"),
    ],
)
def test_format_flops_picks_a_unit_that_keeps_the_value_short(gflops, shown):
    assert common.format_flops(gflops) == shown
    assert len(shown) <= len("99.9 GFLOPs")


def test_flop_fraction_weighs_each_pass_by_its_flops():
    passes = [(0.5, 1.0), (1.0, 4.0), (2.0, 16.0)]
    assert common.flop_fraction(passes, [0.5]) == pytest.approx(1 / 21)
    assert common.flop_fraction(passes, [0.5, 1.0]) == pytest.approx(5 / 21)
    assert common.flop_fraction(passes, [0.5, 1.0, 2.0]) == 1.0
    flipped = [(0.5, 1.0), (0.5, 1.0), (1.0, 4.0), (1.0, 4.0)]  # each scale and its mirror
    assert common.flop_fraction(flipped, [0.5, 0.5, 1.0]) == pytest.approx(6 / 10)
    assert common.flop_fraction([(0.5, 0.0), (1.0, 0.0)], [0.5]) == 0.5  # no FLOPs: by count


def test_planned_passes_follow_the_plan_with_and_without_flip(model):
    plain = common.planned_passes(model, (64, 96), (0.5, 1.0), hmsa_core.InferOptions())
    flipped = common.planned_passes(model, (64, 96), (0.5, 1.0), hmsa_core.InferOptions(flip=True))
    assert [s for s, _ in plain] == [0.5, 1.0] and [s for s, _ in flipped] == [0.5, 0.5, 1.0, 1.0]
    assert plain[1][1] > 3 * plain[0][1] > 0  # the 1.0 pass has four times the pixels
    assert sum(g for _, g in flipped) == pytest.approx(2 * sum(g for _, g in plain))
