"""``analysis.sweep --gates``: gated hierarchical rows join the cascade x method grid at the
FLOPs actually spent, and the gate survives the CSV round trip."""

from __future__ import annotations

import math

import pytest

import hmsa_core
from analysis.sweep import SweepTable, main, parse_gates, sweep
from hmsa_core.data.open import open_dataset


@pytest.fixture(scope="module")
def table() -> SweepTable:
    model = hmsa_core.load_model("hmsa-lite", "cpu")
    return sweep(
        model,
        open_dataset("synthscapes:val:2"),
        [(0.5, 1.0), (0.5, 1.0, 2.0), (1.0,)],
        ["hierarchical", "mean"],
        precision="fp32",
        progress=False,
        gates=(0.0, 0.3),
    )


def test_gated_rows_are_added_for_every_multi_scale_cascade(table):
    gated = [(r.cascade, r.method, r.gate) for r in table.rows if r.gate]
    assert gated == [((0.5, 1.0), "hierarchical", 0.3), ((0.5, 1.0, 2.0), "hierarchical", 0.3)]
    for cascade, _, gate in gated:
        plain = table.row(cascade, "hierarchical")
        row = table.row(cascade, "hierarchical", gate)
        assert row.gflops <= plain.gflops  # FLOPs actually spent
        assert not math.isnan(row.miou)
    assert "hierarchical (gate 0.3, bound)" in table.to_markdown()


def test_the_gate_column_survives_the_csv(table, tmp_path):
    path = table.to_csv(tmp_path / "sweep.csv")
    back = SweepTable.from_csv(path, table.labels)
    assert [(r.cascade, r.method, r.gate) for r in back.rows] == [
        (r.cascade, r.method, r.gate) for r in table.rows
    ]


def test_bad_gates_are_refused_with_the_fix(capsys):
    assert parse_gates("0, 0.01,0.05") == (0.0, 0.01, 0.05)
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_gates("0,x")
    with pytest.raises(ValueError, match="outside"):
        parse_gates("1.5")
    code = main(["--data", "synthscapes:val:1", "--methods", "mean", "--gates", "0.1"])
    assert code == 2
    assert "gates apply to the hierarchical merge" in capsys.readouterr().err
