"""The README reproduction table and its claim checks, on constructed sweep tables."""

from __future__ import annotations

from analysis.reproduction import check_claims, table_rows, to_markdown
from analysis.sweep import SweepRow, SweepTable
from hmsa_core.labels import CITYSCAPES
from hmsa_core.train.cost import RecipeComparison, StepCost


def row(cascade, method, miou, **iou):
    return SweepRow(tuple(cascade), method, miou, 0.9, dict(iou), 1.0 * len(cascade), 0.1)


def tables(hmsa_full: float):
    big = {"road": 0.9, "sidewalk": 0.6, "pole": 0.1, "person": 0.3}
    fine = {"road": 0.8, "sidewalk": 0.4, "pole": 0.3, "person": 0.5}
    hmsa = SweepTable(
        (
            row((0.5,), "hierarchical", 0.60, **big),
            row((1.0,), "hierarchical", 0.58, **fine),
            row((2.0,), "hierarchical", 0.52, **fine),
            row((0.5, 1.0, 2.0), "mean", 0.62),
            row((0.5, 1.0, 2.0), "max", 0.63),
            row((0.5, 1.0), "hierarchical", 0.64),
            row((0.5, 1.0, 2.0), "hierarchical", hmsa_full),
            row((0.25, 0.5, 1.0, 2.0), "hierarchical", 0.60),
        ),
        CITYSCAPES,
        100,
    )
    explicit = SweepTable((row((0.5, 1.0, 2.0), "explicit", 0.65),), CITYSCAPES, 100)
    step = StepCost("lite", (0.5, 1.0), 8, (192, 384), 10**10, 2**29, 0.5)
    big_step = StepCost("explicit_lite", (0.5, 1.0, 2.0), 8, (192, 384), 42 * 10**9, 2**30, 1.5)
    return hmsa, explicit, RecipeComparison(step, big_step, 4.2, 2.0, 3.0)


def test_rows_come_in_the_issue_order_with_each_models_training_cost():
    hmsa, explicit, cost = tables(0.66)
    rows = table_rows(hmsa, explicit, cost)
    assert [r.name for r in rows] == [
        "single 0.5", "single 1", "single 2", "mean (0.5, 1, 2)", "max (0.5, 1, 2)",
        "explicit (0.5, 1, 2)", "HMSA (0.5, 1)", "HMSA (0.5, 1, 2)", "HMSA (0.25, 0.5, 1, 2)",
    ]  # fmt: skip
    assert rows[5].training is cost.explicit and rows[7].training is cost.hmsa
    assert "| HMSA (0.5, 1, 2) | 66.0 |" in to_markdown(rows, 100)


def test_claims_hold_or_fail_according_to_the_numbers():
    hmsa, explicit, cost = tables(0.66)
    assert all(c.holds for c in check_claims(table_rows(hmsa, explicit, cost), cost))
    hmsa, explicit, cost = tables(0.61)  # below max pooling and below the (0.5, 1) pair
    verdicts = {c.text: c.holds for c in check_claims(table_rows(hmsa, explicit, cost), cost)}
    assert not verdicts["HMSA (0.5, 1, 2) beats every single scale, mean and max"]
    assert not verdicts["HMSA generalises beyond its training pair (0.5, 1)"]
    assert verdicts["scale 0.5 beats 1.0 on at least two large-region classes"]
    assert verdicts["1.0 or 2.0 beats 0.5 on at least two thin classes"]
