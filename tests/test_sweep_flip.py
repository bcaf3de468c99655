"""The sweep's flip axis: rows with and without flip from the same passes, the flip rows equal
``infer(flip=True)`` and count both passes of each scale."""

from __future__ import annotations

from pathlib import Path

import pytest

import hmsa_core
from analysis.metrics import ConfusionMatrix
from analysis.sweep import SweepTable, sweep
from hmsa_core.labels import CITYSCAPES
from tests.test_cascade_sweep import SIZE, _samples

CASCADES = [(1.0,), (0.5, 1.0, 2.0)]


@pytest.fixture(scope="module")
def table(lite) -> SweepTable:
    return sweep(
        lite, _samples(), CASCADES, ["hierarchical", "mean"], progress=False,
        precision="fp32", flips=(False, True),
    )  # fmt: skip


def test_flip_rows_equal_infer_with_flip_and_plain_rows_are_unchanged(lite, table):
    plain = sweep(
        lite, _samples(), CASCADES, ["hierarchical", "mean"], progress=False, precision="fp32"
    )
    unflipped = [r for r in table.rows if not r.flip]
    for a, b in zip(unflipped, plain.rows, strict=True):
        assert (a.cascade, a.method, a.miou, a.gflops) == (b.cascade, b.method, b.miou, b.gflops)
    cm = ConfusionMatrix(19)
    for sample in _samples():
        result = hmsa_core.infer(
            sample.image, (0.5, 1.0, 2.0), model=lite, cache=None, precision="fp32", flip=True
        )
        cm.update(result.pred, sample.mask)
    flipped = table.row((0.5, 1.0, 2.0), "hierarchical", flip=True)
    assert flipped.miou == cm.scores().miou
    expected = hmsa_core.estimate_cascade(lite, SIZE, (0.5, 1.0, 2.0)).gflops
    assert flipped.gflops == pytest.approx(2 * expected, rel=1e-12)
    assert table.row((0.5, 1.0, 2.0), "hierarchical").gflops == pytest.approx(expected, rel=1e-12)


def test_flip_rows_round_trip_through_csv_and_show_in_markdown(table, tmp_path: Path):
    back = SweepTable.from_csv(table.to_csv(tmp_path / "sweep.csv"), CITYSCAPES)
    assert [r.flip for r in back.rows] == [r.flip for r in table.rows]
    assert sum(r.flip for r in table.rows) == len(table.rows) // 2
    assert "| 0.5, 1, 2 | hierarchical + flip |" in table.to_markdown()
