"""Confusion-matrix metrics against hand-computed cases."""

import numpy as np
import pytest

from analysis.metrics import ConfusionMatrix, score_prediction


def test_iou_of_a_hand_computed_case():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    scores = score_prediction(pred, target, num_classes=4)
    # class 0: tp 1, gt 2, pred 1 -> 1 / 2 ; class 1: tp 2, gt 2, pred 3 -> 2 / 3 ; class 2: 1 / 1
    np.testing.assert_allclose(scores.iou[:3], [1 / 2, 2 / 3, 1.0])
    assert np.isnan(scores.iou[3])  # absent from both: not counted
    assert scores.miou == pytest.approx((1 / 2 + 2 / 3 + 1.0) / 3)
    assert scores.pixel_accuracy == pytest.approx(4 / 5)  # the ignored pixel does not count


def test_class_only_in_prediction_counts_with_zero_iou():
    scores = score_prediction(np.array([[3, 0]]), np.array([[0, 0]]), num_classes=4)
    assert scores.present[3] and scores.iou[3] == 0.0
    assert scores.miou == pytest.approx((0.5 + 0.0) / 2)


def test_accumulating_equals_scoring_the_concatenation():
    rng = np.random.default_rng(0)
    a_t, a_p = rng.integers(0, 5, (2, 8, 9))
    b_t, b_p = rng.integers(0, 5, (2, 8, 9))
    cm = ConfusionMatrix(5)
    cm.update(a_p, a_t)
    cm.update(b_p, b_t)
    whole = score_prediction(np.concatenate([a_p, b_p]), np.concatenate([a_t, b_t]), 5)
    np.testing.assert_array_equal(cm.scores().iou, whole.iou)


def test_bad_ground_truth_ids_and_sizes_are_refused():
    with pytest.raises(ValueError, match="outside"):
        score_prediction(np.zeros((2, 2)), np.full((2, 2), 7), num_classes=4)
    with pytest.raises(ValueError, match="differ in size"):
        score_prediction(np.zeros((2, 2)), np.zeros((2, 3)), num_classes=4)
