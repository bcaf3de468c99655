"""Calibration: reliability bins and ECE on hand-made confidences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.calibration import (
    ReliabilityBins,
    expected_calibration_error,
    reliability_bins,
    top_probability,
)
from hmsa_core.confidence import confidence_maps


def test_perfectly_confident_correct_prediction_has_zero_ece() -> None:
    assert expected_calibration_error(np.ones(100), np.ones(100, bool)) == 0.0


def test_ece_of_an_overconfident_bin() -> None:
    conf = np.full(10, 0.9)
    correct = np.array([True] * 8 + [False] * 2)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.1)
    # Two bins of equal size, gaps 0.1 and 0.3: ECE is their mean.
    conf2 = np.r_[np.full(10, 0.9), np.full(10, 0.5)]
    correct2 = np.r_[correct, np.array([True] * 8 + [False] * 2)]
    assert expected_calibration_error(conf2, correct2) == pytest.approx((0.1 + 0.3) / 2)


def test_bins_add_up_and_confidence_one_lands_in_the_last_bin() -> None:
    h = reliability_bins(np.array([0.0, 0.5, 1.0, 1.0]), np.array([False, True, True, False]))
    assert h.counts.sum() == 4 and h.counts[-1] == 2 and h.counts[0] == 1
    total = ReliabilityBins.empty()
    total.add(h)
    total.add(h)
    assert total.counts.tolist() == (2 * h.counts).tolist()
    acc, share = total.accuracy_above()
    assert share[0] == 1.0 and acc[0] == 0.5
    assert np.isnan(ReliabilityBins.empty().ece())


def test_top_probability_and_confidence_maps_match_softmax() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 6, 7)
    probs = torch.softmax(logits, 0)
    pred, top = top_probability(logits)
    assert torch.equal(pred.long(), probs.argmax(0))
    torch.testing.assert_close(top, probs.max(0).values)
    _, strided = top_probability(logits, stride=2)
    torch.testing.assert_close(strided, probs.max(0).values[::2, ::2])
    maps = confidence_maps(logits)
    best2 = probs.topk(2, 0).values
    torch.testing.assert_close(maps.top_prob, best2[0])
    torch.testing.assert_close(maps.margin, best2[0] - best2[1])
    torch.testing.assert_close(maps.entropy, -(probs * probs.log()).sum(0))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        confidence_maps(torch.zeros(3, 4))
