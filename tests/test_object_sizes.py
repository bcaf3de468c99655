"""Objects of a mask (connected components or instances) and their COCO-like size bins."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.objects import SizeBins, find_objects


def _scene() -> np.ndarray:
    """A 100 x 100 mask (10 000 px): class 0 everywhere, a 1-px line of class 1 (20 px, small),
    a 10 x 10 block of class 2 (1%, medium), a 40 x 40 block of class 3 (16%, large)."""
    mask = np.zeros((100, 100), dtype=np.int64)
    mask[10:30, 5] = 1
    mask[10:20, 20:30] = 2
    mask[50:90, 50:90] = 3
    return mask


def test_line_and_blocks_fall_in_known_size_bins() -> None:
    table = find_objects(_scene(), num_classes=4)
    assert table.source == "components"
    by_class = {int(c): k for k, c in enumerate(table.classes)}
    assert sorted(by_class) == [0, 1, 2, 3]
    areas = {c: int(table.areas[k]) for c, k in by_class.items()}
    assert areas == {0: 10000 - 20 - 100 - 1600, 1: 20, 2: 100, 3: 1600}
    k = by_class[1]
    assert table.diameters[k] == pytest.approx(np.sqrt(4 * 20 / np.pi))
    assert table.shares[k] == pytest.approx(0.002)
    bins = SizeBins().size_bin(table.shares)
    assert [int(bins[by_class[c]]) for c in (1, 2, 3, 0)] == [0, 1, 2, 2]
    assert np.isnan(table.distances).all()


def test_components_are_8_connected_and_split_by_class() -> None:
    mask = np.zeros((10, 10), dtype=np.int64)
    mask[2, 2] = mask[3, 3] = 1  # diagonal neighbours: one object
    mask[7, 7] = 1  # another object of the same class
    table = find_objects(mask, num_classes=2)
    assert sorted(table.areas[table.classes == 1].tolist()) == [1, 2]
    index = table.index_map()
    assert index[2, 2] == index[3, 3] != index[7, 7]


def test_instances_are_objects_and_the_rest_components() -> None:
    mask = np.zeros((20, 20), dtype=np.int64)
    mask[5:10, 5:15] = 1  # two touching cars, one class
    inst = np.zeros((20, 20), dtype=np.int32)
    inst[5:10, 5:10], inst[5:10, 10:15] = 7, 9
    table = find_objects(mask, 2, instances=inst, distances={7: 12.5, 9: 40.0})
    assert table.source == "instances+components"
    cars = table.classes == 1
    assert sorted(table.areas[cars].tolist()) == [25, 25]
    assert sorted(table.distances[cars].tolist()) == [12.5, 40.0]
    assert np.isnan(table.distances[~cars]).all() and table.areas[~cars].tolist() == [350]


def test_instance_spanning_two_classes_is_split_and_noted() -> None:
    mask = np.zeros((10, 10), dtype=np.int64)
    mask[:, 5:] = 1
    inst = np.zeros((10, 10), dtype=np.int32)
    inst[2:4, 3:7] = 5  # covers pixels of class 0 and class 1
    table = find_objects(mask, 2, instances=inst)
    assert any("several classes" in n for n in table.notes)
    pieces = table.index_map()[2:4, 3:7]
    assert len(np.unique(pieces)) == 2  # one object per class
    assert table.areas.sum() == 100


def test_ignore_pixels_belong_to_no_object() -> None:
    mask = np.full((8, 8), 255, dtype=np.int64)
    mask[:4] = 0
    table = find_objects(mask, 3)
    assert len(table) == 1 and table.areas.tolist() == [32]
    assert (table.index_map()[4:] == -1).all()
    empty = find_objects(np.full((8, 8), 255), 3)
    assert len(empty) == 0


def test_bad_input_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.3.*7"):
        find_objects(np.full((4, 4), 7), 4)
    with pytest.raises(ValueError, match="instance map is 3 x 3"):
        find_objects(np.zeros((4, 4), int), 4, instances=np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="small_max < medium_max"):
        SizeBins(small_max=0.1, medium_max=0.05)


def test_diameter_bins_are_log_spaced_with_an_open_last_bin() -> None:
    bins = SizeBins()
    assert bins.diameter_bin(np.array([1.0, 3.0, 300.0, 5000.0])).tolist() == [0, 1, 8, 8]
    assert bins.diameter_names()[-1] == ">= 256 px"


def test_cityscapes_instance_ids_become_the_objects(tmp_path) -> None:
    from PIL import Image

    from hmsa_core.data.cityscapes import Cityscapes

    city = "aachen"
    for sub in ("leftImg8bit", "gtFine"):
        (tmp_path / sub / "val" / city).mkdir(parents=True)
    stem = f"{city}_000000_000019"
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(
        tmp_path / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png"
    )
    ids = np.full((16, 24), 7, np.uint8)  # road
    ids[4:10, 2:12] = 26  # two touching cars (labelId 26, trainId 13)
    Image.fromarray(ids, mode="L").save(
        tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"
    )
    inst = ids.astype(np.int32)
    inst[4:10, 2:7], inst[4:10, 7:12] = 26000, 26001
    Image.fromarray(inst.astype(np.uint16)).save(
        tmp_path / "gtFine" / "val" / city / f"{stem}_gtFine_instanceIds.png"
    )
    sample = Cityscapes(tmp_path, "val")[0]
    assert sample.instances is not None
    assert set(np.unique(sample.instances).tolist()) == {0, 26000, 26001}
    table = find_objects(sample.mask, 19, instances=sample.instances)
    assert table.source == "instances+components"
    assert sorted(table.areas[table.classes == 13].tolist()) == [30, 30]
