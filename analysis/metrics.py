"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hmsa_core.labels import IGNORE_INDEX, LabelSet


@dataclass(frozen=True)
class SegmentationScores:
    """Scores derived from a confusion matrix.

    Attributes:
        iou: ``(C,)`` per-class IoU; NaN for classes absent from both ground truth and prediction.
        miou: mean IoU over the classes present in ground truth or prediction (NaN if none).
        pixel_accuracy: correct / labelled pixels (NaN if no labelled pixel).
        present: ``(C,)`` bool, class present in ground truth or prediction.
        gt_pixels: ``(C,)`` labelled pixels of each class.
    """

    iou: np.ndarray
    miou: float
    pixel_accuracy: float
    present: np.ndarray
    gt_pixels: np.ndarray

    def as_dict(self, labels: LabelSet | None = None) -> dict:
        """Returns a JSON-serialisable dict (per-class IoU keyed by class name when ``labels`` given)."""
        names = labels.names if labels is not None else [str(i) for i in range(len(self.iou))]
        return {
            "miou": nan_to_none(self.miou),
            "pixel_accuracy": nan_to_none(self.pixel_accuracy),
            "per_class_iou": {
                names[i]: nan_to_none(float(v)) for i, v in enumerate(self.iou) if self.present[i]
            },
        }


def nan_to_none(value: float) -> float | None:
    """Returns ``value`` as a float, or ``None`` for NaN (JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` confusion matrix (rows: ground truth, columns: prediction).

    Pixels whose ground truth is ``ignore_index`` are skipped. Ground-truth ids outside
    ``[0, C)`` (other than the ignore index) raise ``ValueError``.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
        """Adds the pixels of an ``(H, W)`` prediction and its ``(H, W)`` ground truth."""
        p = _as_numpy(pred).astype(np.int64).ravel()
        t = _as_numpy(target).astype(np.int64).ravel()
        if p.shape != t.shape:
            raise ValueError(
                f"prediction {_as_numpy(pred).shape} and ground truth {_as_numpy(target).shape} "
                "differ in size"
            )
        keep = t != self.ignore_index
        p, t = p[keep], t[keep]
        bad_t = (t < 0) | (t >= self.num_classes)
        if bad_t.any():
            raise ValueError(
                f"ground truth holds ids outside 0..{self.num_classes - 1} "
                f"(and {self.ignore_index}): {sorted(set(t[bad_t].tolist()))[:10]}"
            )
        if ((p < 0) | (p >= self.num_classes)).any():
            raise ValueError(f"prediction holds ids outside 0..{self.num_classes - 1}")
        self.matrix += np.bincount(t * self.num_classes + p, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Adds another matrix of the same size into this one; returns ``self``."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
        return self

    def scores(self) -> SegmentationScores:
        """Returns the :class:`SegmentationScores` of everything accumulated so far."""
        return scores_from_matrix(self.matrix)


def scores_from_matrix(matrix: np.ndarray) -> SegmentationScores:
    """Returns the :class:`SegmentationScores` of a ``(C, C)`` confusion matrix."""
    m = matrix.astype(np.float64)
    tp = np.diag(m)
    gt = m.sum(1)
    predicted = m.sum(0)
    union = gt + predicted - tp
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / np.where(union > 0, union, 1), np.nan)
    miou = float(np.nanmean(iou)) if present.any() else float("nan")
    total = m.sum()
    accuracy = float(tp.sum() / total) if total > 0 else float("nan")
    return SegmentationScores(iou, miou, accuracy, present, gt.astype(np.int64))


def score_prediction(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> SegmentationScores:
    """Returns the :class:`SegmentationScores` of one ``(H, W)`` prediction against its ground truth."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(pred, target)
    return cm.scores()
