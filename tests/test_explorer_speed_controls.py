"""The explorer's precision choice and attention-gate slider (streamlit AppTest): the memory
estimate before a run, the precision that ran in the cost table, and skipped tiles drawn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import hmsa_core
from hmsa_core.precision import resolve_precision
from tests.apptest_env import module_samples, use_samples

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
TIMEOUT = 180


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return module_samples(tmp_path_factory, size=(256, 512), name="speed_samples")


@pytest.fixture
def app_env(samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_samples(samples_dir, monkeypatch, tmp_path / "no_models")
    monkeypatch.setenv("HMSA_GATE_TILE", "64")
    monkeypatch.setenv("HMSA_TILE_OVERLAP", "32")
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    return samples_dir


def _cost_table(at: AppTest):
    return next(df.value for df in at.dataframe if "precision" in df.value.columns)


def _start(tab: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["result_tab"] = tab  # only the open tab's view runs
    return at.run()


def _open(at: AppTest, tab: str) -> AppTest:
    at.session_state["result_tab"] = tab
    return at.run()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_precision_choice_reaches_the_cost_table_and_the_memory_estimate(app_env):
    at = _start("Cost")
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="precision").options == ["auto", "fp32"]
    auto_estimate = _metric(at, "Peak memory (est.)")
    ran = resolve_precision("auto", torch.device("cpu"))
    assert set(_cost_table(at)["precision"]) == {ran}
    at.radio(key="precision").set_value("fp32").run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(_cost_table(at)["precision"]) == {"fp32"}
    fp32_estimate = _metric(at, "Peak memory (est.)")
    if ran != "fp32":  # reduced precision holds half the activations
        assert auto_estimate != fp32_estimate
    assert "ran in fp32" in "\n".join(c.value for c in at.caption)


def test_the_gate_slider_draws_the_skipped_tiles_and_reports_flops_saved(app_env):
    at = _start("Cost")
    at.selectbox(key="sample_name").set_value("synthscapes_val_001").run()
    at.radio(key="precision").set_value("fp32").run()
    at.slider(key="gate").set_value(0.5).run()
    at.radio(key="gate_by").set_value("confidence").run()
    assert not at.exception, [e.value for e in at.exception]
    table = _cost_table(at)
    per_scale = table[table["scale"] != "total"]
    assert (per_scale["computed %"] < 100).any()  # this sample skips tiles of 2.0 here
    assert "confidence 0.5 (approximate)" in set(per_scale["gate"])
    assert "approximate" in "\n".join(c.value for c in at.caption)
    saved = float(table[table["scale"] == "total"]["GFLOPs saved"].iloc[0])
    assert saved > 0
    _open(at, "Per-scale")
    captions = [c for img in at.get("image") for c in img.captions]
    assert any("computed" in c and "skipped" in c for c in captions), captions
    at.slider(key="gate").set_value(0.0).run()  # back to exact HMSA: nothing skipped
    table = _cost_table(_open(at, "Cost"))
    assert (table[table["scale"] != "total"]["computed %"] == 100).all()
