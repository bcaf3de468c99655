"""Distances to class boundaries, trimap bands and Boundary IoU (DESIGN 1.7, issue 19 item 2).

Distances are chessboard distances (a 3 x 3 dilation repeated d times: the metric trimap and
Boundary IoU implementations use), in pixels at the analysed resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

#: Trimap widths (pixels) of the issue.
TRIMAP_WIDTHS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


def thick_boundaries(labels: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """Returns ``(H, W)`` bool: pixels with an 8-neighbour of another label, the pixels
    ``skimage.segmentation.find_boundaries(labels, connectivity=2, mode="thick")`` marks (the
    tests check they agree), by eight shifted comparisons (several times faster). With
    ``ignore_index``, a pair involving that label is no boundary (ignore regions make none)."""
    b = np.zeros(labels.shape, dtype=bool)
    ok = None if ignore_index is None else labels != ignore_index
    for sl_a, sl_b in (
        ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        ((slice(1, None), slice(1, None)), (slice(None, -1), slice(None, -1))),
        ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))),
    ):
        diff = labels[sl_a] != labels[sl_b]
        if ok is not None:
            diff &= ok[sl_a] & ok[sl_b]
        b[sl_a] |= diff
        b[sl_b] |= diff
    return b


def boundary_distance(mask: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Returns ``(H, W)`` float32: the chessboard distance of every pixel to the nearest pixel of
    another class (1 next to a boundary, 2 one pixel further in, ...); ``inf`` where the mask
    has no boundary at all (one class, or all ignore). Ignore pixels neither make a boundary
    nor are excluded here: scores skip them.

    Computed as 1 + the distance to the boundary pixels (pixels with an 8-neighbour of another,
    non-ignore class), which equals the distance to the other class exactly when no ignore pixel
    lies between.

    Raises:
        ValueError: a mask that is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    bnd = thick_boundaries(mask, ignore_index)
    if not bnd.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    dist = ndi.distance_transform_cdt(~bnd, metric="chessboard")
    return (dist + 1).astype(np.float32)


def trimap_bands(distance: np.ndarray, widths: Sequence[int] = TRIMAP_WIDTHS) -> np.ndarray:
    """Returns ``(H, W)`` uint8: the index of the narrowest width ``w`` with ``distance <= w``
    (``len(widths)`` for pixels further than every width). Pixels in band ``<= k`` are the
    trimap of width ``widths[k]``."""
    edges = np.asarray(widths, dtype=np.float64)
    if edges.size == 0 or np.any(np.diff(edges) <= 0) or edges.size > 254:
        raise ValueError(f"trimap widths must increase (at most 254), got {tuple(widths)}")
    return np.searchsorted(edges, distance, side="left").astype(np.uint8)


def trimap_scores(
    confusion: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(miou (W,), accuracy (W,))`` of per-band confusion matrices ``(W + 1, C, C)``
    (rows ground truth, columns prediction; the last band is "further than every width"),
    cumulated so that entry ``k`` scores every pixel within ``widths[k]``. mIoU averages the
    classes present in the ground truth of the band; NaN for an empty band."""
    cum = np.cumsum(confusion[:-1], axis=0)
    return _miou(cum), _accuracy(cum)


def _miou(conf: np.ndarray) -> np.ndarray:
    """Returns ``(...,)`` mean IoU of ``(..., C, C)`` confusion matrices over classes present in
    the ground truth; NaN when none is."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(np.float64)
    gt = conf.sum(-1).astype(np.float64)
    pr = conf.sum(-2).astype(np.float64)
    union = gt + pr - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(gt > 0, tp / np.where(union > 0, union, 1), np.nan)
        present = (gt > 0).sum(-1)
        return np.where(present > 0, np.nansum(iou, -1) / np.maximum(present, 1), np.nan)


def _accuracy(conf: np.ndarray) -> np.ndarray:
    """Returns ``(...,)`` pixel accuracy of ``(..., C, C)`` confusion matrices; NaN if empty."""
    total = conf.sum((-2, -1)).astype(np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1).sum(-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, tp / np.where(total > 0, total, 1), np.nan)


def boundary_dilation(size: tuple[int, int], ratio: float = 0.02) -> int:
    """Returns the Boundary IoU band width in pixels: ``round(ratio * diagonal)``, at least 1
    (Cheng et al. 2021 use ratio 0.02)."""
    if not 0 < ratio < 1:
        raise ValueError(f"boundary IoU ratio must be in (0, 1), got {ratio}")
    return max(1, round(ratio * float(np.hypot(*size))))


def inner_band(labels: np.ndarray, dilation: int) -> np.ndarray:
    """Returns ``(H, W)`` bool: pixels within ``dilation`` (chessboard) of their own region's
    contour, the image border counting as contour (Cheng et al.'s ``mask_to_boundary`` applied
    to every class of a label map at once). Every label, ignore included, is a region."""
    h, w = labels.shape
    # chessboard distance to the contour <= dilation - 1: the contour grown by a square
    band = np.ascontiguousarray(
        _grow(_grow(thick_boundaries(labels), dilation - 1, 0), dilation - 1, 1)
    )
    d = min(dilation, h, w)
    band[:d], band[-d:], band[:, :d], band[:, -d:] = (True,) * 4
    return band


def _grow(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Returns ``(H, W)`` bool: ``mask`` OR-ed over ``[i - radius, i + radius]`` along ``axis``
    (outside the image counts as False), by doubling shifts (a few passes, any radius)."""
    if radius <= 0:
        return mask
    n = mask.shape[axis]
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (radius, radius)
    cur = np.pad(mask, pad)
    m = cur.shape[axis]

    def cut(a: int, b: int) -> tuple[slice, ...]:
        idx = [slice(None)] * mask.ndim
        idx[axis] = slice(a, b)
        return tuple(idx)

    span, length = 2 * radius + 1, 1  # cur[i] covers [i, i + length) of the padded mask
    while 2 * length <= span:
        cur[cut(0, m - length)] |= cur[cut(length, m)]
        length *= 2
    if span > length:
        cur[cut(0, m - (span - length))] |= cur[cut(span - length, m)]
    return cur[cut(0, n)]


def boundary_iou_counts(
    pred: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    gt_band: np.ndarray,
    dilation: int,
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(intersection (C,), union (C,))`` pixel counts of Boundary IoU per class, given
    the ground truth's :func:`inner_band` (so it is computed once per image). Pixels whose
    ground truth is ignore are not counted."""  # fmt: skip
    valid = mask != ignore_index
    p_band = inner_band(pred, dilation) & valid
    g_band = gt_band & valid
    gt, pr = mask[g_band].astype(np.int64), pred[p_band].astype(np.int64)
    g_cnt = np.bincount(gt, minlength=num_classes)[:num_classes]
    p_cnt = np.bincount(pr, minlength=num_classes)[:num_classes]
    both = g_band & p_band & (pred == mask)
    inter = np.bincount(mask[both].astype(np.int64), minlength=num_classes)[:num_classes]
    return inter, g_cnt + p_cnt - inter


def boundary_iou(
    pred: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    ratio: float = 0.02,
    ignore_index: int = 255,
) -> np.ndarray:
    """Returns ``(C,)`` Boundary IoU per class (Cheng et al. 2021) of a ``(H, W)`` prediction
    against its mask: IoU of the two inner boundary bands of width ``ratio * diagonal``; NaN for
    a class in neither.

    Raises:
        ValueError: shapes that differ.
    """  # fmt: skip
    pred, mask = np.asarray(pred), np.asarray(mask)
    if pred.shape != mask.shape:
        raise ValueError(f"prediction {pred.shape} and mask {mask.shape} differ in size")
    d = boundary_dilation(mask.shape, ratio)
    inter, union = boundary_iou_counts(
        pred, mask, num_classes, inner_band(mask, d), d, ignore_index
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)
