"""Distances to boundaries, trimap bands and Boundary IoU on hand-built masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from analysis.boundaries import (
    boundary_dilation,
    boundary_distance,
    boundary_iou,
    thick_boundaries,
    trimap_bands,
    trimap_scores,
)


def test_thick_boundaries_are_the_pixels_find_boundaries_marks() -> None:
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 4, (5, 7)), np.ones((3, 3), int))
    labels[rng.random(labels.shape) < 0.05] = 9
    want = find_boundaries(labels, connectivity=2, mode="thick")
    np.testing.assert_array_equal(thick_boundaries(labels), want)
    no_ignore = thick_boundaries(labels, ignore_index=9)
    assert not no_ignore[labels == 9].any() and (no_ignore <= want).all()


def test_distance_around_a_one_pixel_line() -> None:
    mask = np.zeros((9, 9), dtype=np.int64)
    mask[:, 4] = 1
    d = boundary_distance(mask)
    assert d[:, 4].tolist() == [1.0] * 9  # the line itself touches the other class
    assert d[4].tolist() == [4, 3, 2, 1, 1, 1, 2, 3, 4]


def test_distance_inside_a_block_is_chessboard() -> None:
    mask = np.zeros((12, 12), dtype=np.int64)
    mask[2:10, 2:10] = 1
    d = boundary_distance(mask)
    assert d[5, 5] == 4.0  # 3 px to the block's edge row, +1 to the other class
    assert d[2, 2] == 1.0 and d[1, 1] == 1.0 and d[0, 0] == 2.0


def test_one_class_or_all_ignore_has_no_boundary_and_ignore_makes_none() -> None:
    assert np.isinf(boundary_distance(np.zeros((4, 5), int))).all()
    assert np.isinf(boundary_distance(np.full((4, 5), 255))).all()
    mask = np.zeros((6, 6), dtype=np.int64)
    mask[:, 3:] = 255
    assert np.isinf(boundary_distance(mask)).all()


def test_trimap_bands_and_cumulative_scores() -> None:
    d = np.array([1.0, 2.0, 3.0, 5.0, 100.0, np.inf])
    assert trimap_bands(d, (1, 2, 4)).tolist() == [0, 1, 2, 3, 3, 3]
    conf = np.zeros((4, 2, 2), dtype=np.int64)
    conf[0] = [[1, 1], [0, 0]]  # band d<=1: one right, one wrong (class 0)
    conf[1] = [[0, 0], [0, 2]]  # 1<d<=2: two right of class 1
    miou, acc = trimap_scores(conf)
    assert acc[0] == 0.5 and acc[1] == 0.75 and acc[2] == 0.75
    assert miou[0] == pytest.approx(0.5)  # class 0: 1/2; class 1 absent from the gt
    assert miou[1] == pytest.approx((0.5 + 2 / 3) / 2)


def _cheng_boundary(binary: np.ndarray, dilation: int) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary: pad with 0, erode with a 3x3 square d times."""
    padded = np.pad(binary, 1)
    eroded = ndi.binary_erosion(padded, np.ones((3, 3), bool), iterations=dilation)
    return (padded & ~eroded)[1:-1, 1:-1]


def _reference_biou(pred: np.ndarray, mask: np.ndarray, c: int, dilation: int) -> float:
    g = _cheng_boundary(mask == c, dilation)
    p = _cheng_boundary(pred == c, dilation)
    union = (g | p).sum()
    return float((g & p).sum() / union) if union else float("nan")


def test_boundary_iou_of_the_mask_itself_is_one() -> None:
    mask = np.zeros((40, 60), dtype=np.int64)
    mask[10:30, 15:45] = 1
    mask[0:5, 0:5] = 2
    biou = boundary_iou(mask, mask, num_classes=4)
    assert biou[:3].tolist() == [1.0, 1.0, 1.0] and np.isnan(biou[3])


def test_boundary_iou_of_a_shifted_block_matches_the_hand_count() -> None:
    mask = np.zeros((20, 20), dtype=np.int64)
    mask[5:15, 5:15] = 1
    pred = np.roll(mask, 1, axis=1)
    assert boundary_dilation(mask.shape, 0.02) == 1
    biou = boundary_iou(pred, mask, num_classes=2)
    # Class 1: two 36-px rings sharing the 2 x 9 px of the top and bottom rows: 18 / 54.
    assert biou[1] == pytest.approx(18 / 54)
    # Class 0: the 76-px image border and the 44-px outer rings, sharing 76 + 2 x 11 px.
    assert biou[0] == pytest.approx(98 / 142)


def test_boundary_iou_equals_the_reference_on_random_masks() -> None:
    rng = np.random.default_rng(3)
    for trial in range(4):
        mask = np.kron(rng.integers(0, 3, (6, 8)), np.ones((7, 7), int))
        pred = np.kron(rng.integers(0, 3, (6, 8)), np.ones((7, 7), int))
        d = boundary_dilation(mask.shape, 0.05)
        got = boundary_iou(pred, mask, 3, ratio=0.05)
        want = [_reference_biou(pred, mask, c, d) for c in range(3)]
        np.testing.assert_allclose(got, want, err_msg=f"trial {trial}")


def test_boundary_iou_refuses_different_sizes() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        boundary_iou(np.zeros((4, 4), int), np.zeros((4, 5), int), 2)
