"""Dataset loaders read real files: Cityscapes layout, image/mask folders, and dataset specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmsa_core.data import open_dataset
from hmsa_core.data.cityscapes import Cityscapes
from hmsa_core.data.folders import ImageFolder
from hmsa_core.labels import CITYSCAPES

RNG = np.random.default_rng(0)


def _rgb(h: int = 16, w: int = 24) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_cityscapes(root: Path, split: str = "val") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes two cities of images + labelIds; returns name -> (image, label ids)."""
    written = {}
    for city, frames in (
        ("aachen", ("000000_000019", "000001_000019")),
        ("bonn", ("000002_000019",)),
    ):
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        for frame in frames:
            stem = f"{city}_{frame}"
            image = _rgb()
            ids = RNG.choice(np.array([0, 7, 8, 26, 33, 4], dtype=np.uint8), size=(16, 24))
            Image.fromarray(image).save(
                root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            )
            Image.fromarray(ids, mode="L").save(
                root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
            )
            written[f"{city}/{stem}"] = (image, ids)
    return written


def test_cityscapes_reads_images_and_maps_label_ids_to_train_ids(tmp_path: Path) -> None:
    written = _write_cityscapes(tmp_path)
    data = Cityscapes(tmp_path, "val")
    assert len(data) == 3
    assert [s.name for s in data] == sorted(written)
    expected_train = {0: 255, 7: 0, 8: 1, 26: 13, 33: 18, 4: 255}
    for sample in data:
        image, ids = written[sample.name]
        assert sample.image.dtype == np.uint8 and np.array_equal(sample.image, image)
        assert sample.mask.dtype == np.int64
        assert np.array_equal(sample.mask, np.vectorize(expected_train.get)(ids))


def test_cityscapes_missing_label_file_is_a_clear_error(tmp_path: Path) -> None:
    _write_cityscapes(tmp_path)
    (tmp_path / "gtFine/val/bonn/bonn_000002_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(ValueError, match=r"label file.*missing.*bonn_000002_000019"):
        Cityscapes(tmp_path, "val")


def test_cityscapes_rejects_other_layouts_and_unknown_splits(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="not a Cityscapes folder"):
        Cityscapes(tmp_path)
    _write_cityscapes(tmp_path / "cs")
    with pytest.raises(ValueError, match=r"split 'train' not found.*val"):
        Cityscapes(tmp_path / "cs", "train")
    (tmp_path / "cs2/leftImg8bit/val/x").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no '\*_leftImg8bit\.png' images"):
        Cityscapes(tmp_path / "cs2")


def test_folder_supports_masks_subfolder_mask_suffix_and_unlabelled_images(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    a, b, c = _rgb(), _rgb(), _rgb()
    mask_a = RNG.integers(0, 19, (16, 24)).astype(np.uint8)
    mask_a[0] = 255
    mask_b = RNG.integers(0, 19, (16, 24)).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(mask_a, mode="L").save(tmp_path / "masks" / "a.png")
    Image.fromarray(b).save(tmp_path / "b.jpg", quality=95)
    Image.fromarray(mask_b, mode="L").save(tmp_path / "b_mask.png")
    Image.fromarray(c).save(tmp_path / "c.png")  # no mask
    data = ImageFolder(tmp_path)
    assert [s.name for s in data] == ["a", "b", "c"]  # b_mask.png is not an image
    assert data.num_labelled == 2
    sa, sb, sc = data[0], data[1], data[2]
    assert np.array_equal(sa.image, a) and np.array_equal(sa.mask, mask_a.astype(np.int64))
    assert (sa.mask[0] == 255).all()
    assert sb.image.shape == (16, 24, 3) and np.array_equal(sb.mask, mask_b)
    assert sc.mask is None
    with pytest.raises(ValueError, match=r"have no mask.*c.png"):
        ImageFolder(tmp_path, require_masks=True)


def test_folder_reads_palette_masks_as_indices_and_checks_them(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    ids = np.array([[0, 1, 13], [18, 255, 2]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    palette_mask = Image.fromarray(ids, mode="P")
    palette_mask.putpalette(CITYSCAPES.flat_palette())
    palette_mask.save(tmp_path / "masks" / "scene.png")
    Image.fromarray(_rgb(8, 12)).save(tmp_path / "images" / "scene.png")
    sample = ImageFolder(tmp_path, labels=CITYSCAPES)[0]
    assert np.array_equal(sample.mask, ids.astype(np.int64))

    bad = ids.copy()
    bad[0, 0] = 40
    Image.fromarray(bad, mode="L").save(tmp_path / "masks" / "scene.png")
    with pytest.raises(ValueError, match=r"outside the cityscapes label set.*40"):
        ImageFolder(tmp_path, labels=CITYSCAPES)[0]
    Image.fromarray(ids[:4], mode="L").save(tmp_path / "masks" / "scene.png")
    with pytest.raises(
        ValueError, match=r"mask scene\.png is 12 x 4 but image scene\.png is 12 x 8"
    ):
        ImageFolder(tmp_path)[0]


def test_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        ImageFolder(tmp_path / "missing")


def test_open_dataset_dispatches_on_the_spec(tmp_path: Path) -> None:
    _write_cityscapes(tmp_path / "cs")
    assert isinstance(open_dataset(f"cityscapes:{tmp_path / 'cs'}"), Cityscapes)
    assert len(open_dataset(f"cityscapes:{tmp_path / 'cs'}:val")) == 3
    assert isinstance(open_dataset(str(tmp_path / "cs")), Cityscapes)  # detected by its layout
    (tmp_path / "plain").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "plain" / "x.png")
    plain = open_dataset(str(tmp_path / "plain"))
    assert isinstance(plain, ImageFolder) and len(plain) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty dataset spec"),
        ("nonsense-that-does-not-exist", "no such folder"),
        ("synthscapes:test", "split must be one of"),
        ("synthscapes:val:many", "whole number"),
        ("synthscapes:val:0", "at least 1"),
        ("synthscapes:val:3:x", "bad SynthScapes spec"),
        ("cityscapes:", "needs a root folder"),
        ("cityscapes:/no/such/root:val", "is not a folder"),
    ],
)
def test_open_dataset_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_dataset(spec)


def test_open_dataset_rejects_a_file(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "one.png")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        open_dataset(str(tmp_path / "one.png"))


def test_open_dataset_synthscapes_split_and_length() -> None:
    data = open_dataset("synthscapes:val:3")
    assert len(data) == 3
    sample = data[2]
    assert sample.image.shape == (512, 1024, 3) and sample.mask.shape == (512, 1024)
    assert len(open_dataset("synthscapes")) == 100
    assert len(open_dataset("synthscapes:train:5")) == 5
