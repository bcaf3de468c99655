"""Calibration of a prediction's confidence (DESIGN 1.7, issue 19 item 3).

Confidence is the top softmax probability; 15 equal-width bins on ``[0, 1]``; expected
calibration error ``ECE = sum_b (n_b / n) |accuracy_b - mean confidence_b|``. Histograms add
over images, so a dataset's calibration streams.

Command line: ``hmsa calibration`` (:mod:`analysis.calibration_cli`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Number of equal-width confidence bins of the issue.
CALIBRATION_BINS = 15
_CHUNK_ROWS = 128


@dataclass
class ReliabilityBins:
    """A confidence histogram: per bin, the pixels, the sum of their confidence, the correct ones.

    Attributes:
        counts: ``(K,)`` int64 pixels per bin.
        confidence: ``(K,)`` float64 sum of confidence per bin.
        correct: ``(K,)`` int64 correctly labelled pixels per bin.
    """

    counts: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray

    @classmethod
    def empty(cls, bins: int = CALIBRATION_BINS) -> ReliabilityBins:
        """Returns a histogram of ``bins`` empty bins."""
        return cls(np.zeros(bins, np.int64), np.zeros(bins, np.float64), np.zeros(bins, np.int64))

    @property
    def edges(self) -> np.ndarray:
        """Returns the ``(K + 1,)`` bin edges on ``[0, 1]``."""
        return np.linspace(0.0, 1.0, len(self.counts) + 1)

    def add(self, other: ReliabilityBins) -> None:
        """Adds ``other``'s counts into this histogram (same number of bins)."""
        self.counts += other.counts
        self.confidence += other.confidence
        self.correct += other.correct

    def accuracy(self) -> np.ndarray:
        """Returns ``(K,)`` accuracy per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.correct / np.maximum(self.counts, 1), np.nan)

    def mean_confidence(self) -> np.ndarray:
        """Returns ``(K,)`` mean confidence per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.confidence / np.maximum(self.counts, 1), np.nan)

    def ece(self) -> float:
        """Returns the expected calibration error (NaN when no pixel was counted)."""
        n = int(self.counts.sum())
        if n == 0:
            return float("nan")
        gap = np.abs(self.correct - self.confidence)  # = n_b |acc_b - conf_b|
        return float(gap.sum() / n)

    def accuracy_above(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(accuracy (K,), share (K,))`` of the pixels whose confidence is at least each
        bin's lower edge: accuracy against a confidence threshold, and the share kept."""
        counts = np.cumsum(self.counts[::-1])[::-1]
        correct = np.cumsum(self.correct[::-1])[::-1]
        n = max(int(self.counts.sum()), 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
        return acc, counts / n


def top_probability(logits: torch.Tensor, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(pred (H, W) int64, top_prob (ceil(H / stride), ceil(W / stride)) float32)`` of
    ``(C, H, W)`` logits: the arg-max class of every pixel and the softmax probability of that class on every ``stride``-th pixel of each row and
    column (``stride=2``: a quarter of the pixels, a quarter of the softmax cost)."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be (C, H, W), got {tuple(logits.shape)}")
    with torch.no_grad():
        x = logits.detach().float().cpu()
        best, pred = x.max(0)
        k = max(int(stride), 1)
        sub = x[:, ::k, ::k]
        prob = (sub - best[::k, ::k]).exp_().sum(0).reciprocal_()
    return pred, prob


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> ReliabilityBins:
    """Returns the :class:`ReliabilityBins` of ``(N,)`` confidences in ``[0, 1]`` and ``(N,)``
    bool correctness (one bincount each; confidence 1.0 goes in the last bin)."""
    conf = np.asarray(confidence, dtype=np.float32).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.shape != ok.shape:
        raise ValueError(f"confidence {conf.shape} and correctness {ok.shape} differ in size")
    idx = np.minimum((conf * bins).astype(np.int64), bins - 1)
    return ReliabilityBins(
        counts=np.bincount(idx, minlength=bins).astype(np.int64),
        confidence=np.bincount(idx, weights=conf, minlength=bins),
        correct=np.bincount(idx[ok], minlength=bins).astype(np.int64),
    )


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Returns the ECE of ``(N,)`` confidences and ``(N,)`` correctness (NaN when ``N == 0``)."""
    return reliability_bins(confidence, correct, bins).ece()
