"""Model against model on the explorer's main page (the "Model vs model" tab): both models'
predictions, effective weights, per-class IoU and costs side by side, each model's stored
scales reused (forward passes counted), through streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import hmsa_core
from analysis.metrics import score_prediction
from app import common
from app.explorer_parts import compare
from tests.apptest_env import explorer_samples, healthy

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
PASSES = "hmsa_forward_passes"


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return explorer_samples(tmp_path, monkeypatch)


def _iou(at: AppTest):
    tables = [d.value for d in at.dataframe if "difference" in d.value.columns]
    assert len(tables) == 1
    return tables[0].set_index("class")


def _image_captions(at: AppTest) -> list[str]:
    return [img.caption for group in at.image for img in group.proto.imgs]


def test_two_models_side_by_side_reuse_their_stored_scales(app_env):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["tab"] = "Model vs model"
    at.run()
    healthy(at)
    assert at.selectbox(key="compare_model").value == "explicit-lite"
    assert at.session_state[PASSES] == 6  # (0.5, 1, 2) once for each model
    captions = at.caption.values
    shown = _image_captions(at)
    assert shown.count("prediction") == 2
    assert sorted(c for c in shown if c.startswith("effective weight")) == sorted(
        2 * [f"effective weight @ {s}" for s in ("0.5", "1", "2")]
    )
    assert any("GFLOPs for the cascade" in c and "computed for this view" in c for c in captions)
    assert [m.label for m in at.metric if m.label in ("Compute", "mIoU")] == [
        "Compute", "mIoU", "Compute", "mIoU",
    ]  # fmt: skip
    assert all(m.value.endswith("FLOPs") for m in at.metric if m.label == "Compute")
    table = _iou(at)
    assert list(table.columns) == ["hmsa-lite", "explicit-lite", "difference"]
    np.testing.assert_allclose(
        table["difference"].dropna(),
        (table["explicit-lite"] - table["hmsa-lite"]).dropna(),
        atol=0.011,
    )

    hmsa_core.DEFAULT_SCALE_CACHE.clear()  # only the session's stored scales remain
    at.selectbox(key="compare_method_explicit-lite").set_value("mean").run()
    healthy(at)
    at.pills(key="scale_pills").set_value([0.5, 1.0]).run()
    healthy(at)
    assert at.session_state[PASSES] == 6
    assert any("0 of" not in c and "no forward pass" in c for c in at.caption.values)
    at.pills(key="scale_pills").set_value([0.5, 1.0, 2.0]).run()  # explicit-lite's cascade
    at.selectbox(key="model_name").set_value("explicit-lite").run()  # swap the sides
    healthy(at)
    assert at.selectbox(key="compare_model").value == "hmsa-lite"
    assert at.session_state[PASSES] == 6  # both models' scales were stored: no pass
    assert list(_iou(at).columns) == ["explicit-lite", "hmsa-lite", "difference"]


def test_side_result_extends_only_the_missing_scales(app_env):
    model = hmsa_core.load_model("explicit-lite")
    sample = common.list_samples()[0]
    rgb = common.read_image(sample.image_path, None)
    key = common.image_key(rgb)
    session: dict = {}
    _, ran = compare.side_result(session, "m", model, key, rgb, (0.5, 1.0), "mean")
    assert ran == 2 and session[PASSES] == 2
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    grown, ran = compare.side_result(session, "m", model, key, rgb, (0.5, 1.0, 2.0), "explicit")
    assert ran == 1 and session[PASSES] == 3
    again, ran = compare.side_result(session, "m", model, key, rgb, (0.5, 1.0), "max")
    assert ran == 0 and session[PASSES] == 3
    assert set(again.cost.cached_scales) == {0.5, 1.0}
    direct = hmsa_core.infer(rgb, (0.5, 1.0, 2.0), model=model, method="explicit", cache=None)
    assert np.array_equal(grown.pred.numpy(), direct.pred.numpy())
    other = np.ascontiguousarray(rgb[::-1])
    _, ran = compare.side_result(
        session, "m", model, common.image_key(other), other, (0.5,), "mean"
    )
    assert ran == 1  # another image: its own passes


def test_scores_are_skipped_for_a_model_of_other_classes(app_env):
    model = hmsa_core.load_model("hmsa-lite")
    sample = common.list_samples()[0]
    rgb = common.read_image(sample.image_path, None)
    gt = common.read_mask(sample.mask_path, rgb.shape[:2], model.labels)
    result = hmsa_core.infer(rgb, (0.5, 1.0), model=model)
    scores = compare.scores_of(result, gt, model.labels.names)
    assert scores is not None
    assert scores.miou == score_prediction(result.pred, gt, 19).miou
    assert compare.scores_of(result, gt, tuple(f"c{i}" for i in range(19))) is None
    assert compare.scores_of(result, None, model.labels.names) is None
