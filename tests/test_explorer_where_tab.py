"""The explorer's "Where scales win" tab (app/explorer_parts/where_view.py) through streamlit's
AppTest: its size, boundary, calibration and confidence plots render for a sample with its mask,
a cascade or method change re-computes them from the held per-scale outputs without a forward
pass, the tab says what a mask would add without one, and a shared link opens it by name."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import hmsa_core
from app.explorer_parts import where_view
from tests.apptest_env import module_samples, use_samples

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
SIZE = (64, 128)
TAB = "Where scales win"
#: Every chart the tab draws with a mask (the last one also without).
MASK_CHARTS = {
    "fig_where_size",
    "fig_where_size_weight",
    "fig_where_trimap",
    "fig_where_boundary_iou",
    "fig_where_boundary_weight",
    "fig_where_reliability",
    "fig_where_confidence",
}


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return module_samples(tmp_path_factory, size=SIZE)


@pytest.fixture
def app_env(samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_samples(samples_dir, monkeypatch, tmp_path / "no_models")


def _healthy(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _charts(at: AppTest) -> set[str]:
    return {getattr(node, "key", None) or node.proto.id for node in at.get("plotly_chart")}


def _where_tab(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    if params:
        at.query_params.update(params)
    else:
        at.session_state["result_tab"] = TAB
    return _healthy(at.run())


def _report(at: AppTest):
    derived = at.session_state["hmsa_derived"]
    return [v for k, v in derived.items() if k[0] == "where"][-1]  # the latest mask's


def test_the_tab_draws_every_view_and_cascade_or_method_changes_run_no_pass(app_env):
    at = _where_tab()
    assert at.session_state["result_tab"] == TAB
    assert _charts(at) >= MASK_CHARTS, _charts(at)
    assert at.session_state["hmsa_forward_passes"] == 3  # (0.5, 1, 2) once each
    report = _report(at)
    assert report.scales == (0.5, 1.0, 2.0)
    assert report.methods[:4] == ("hierarchical", "mean", "max", "single:0.5")
    spec = next(c.proto.spec for c in at.get("plotly_chart") if c.key == "fig_where_size")
    assert "small" in spec and "large" in spec
    ece = next(df.value for df in at.dataframe if "ECE (%)" in df.value.columns)
    assert list(ece["method"]) == list(report.methods)
    misses = hmsa_core.DEFAULT_SCALE_CACHE.stats().misses

    at.pills(key="scale_pills").set_value([0.5, 1.0]).run()
    _healthy(at)
    assert _report(at).scales == (0.5, 1.0)  # re-computed for the new cascade
    at.selectbox(key="method").set_value("mean").run()
    _healthy(at)
    assert _report(at).methods[0] == "mean"
    at.pills(key="scale_pills").set_value([0.5, 1.0, 2.0]).run()
    _healthy(at)
    assert _charts(at) >= MASK_CHARTS
    assert at.session_state["hmsa_forward_passes"] == 3  # every change re-merged the held passes
    assert hmsa_core.DEFAULT_SCALE_CACHE.stats().misses == misses
    assert at.session_state["hmsa_result"].cost.cached_scales == (0.5, 1.0, 2.0)


def test_the_view_controls_redraw_from_the_same_report(app_env):
    at = _where_tab()
    report = _report(at)
    at.radio(key="where_size_by").set_value("diameter").run()
    _healthy(at)
    assert at.radio(key="where_size_metric").options == ["object recall", "pixel accuracy"]
    at.radio(key="where_size_metric").set_value("accuracy").run()
    at.radio(key="where_trimap_metric").set_value("accuracy").run()
    at.selectbox(key="where_weight_method").set_value("max").run()
    at.multiselect(key="where_conf_kinds").set_value(["entropy"]).run()
    _healthy(at)
    assert _charts(at) >= MASK_CHARTS
    assert _report(at) is report  # made once for this result
    spec = next(c.proto.spec for c in at.get("plotly_chart") if c.key == "fig_where_confidence")
    assert "entropy" in spec and "top probability" not in spec


def test_without_a_mask_the_tab_says_what_a_mask_adds_and_shows_confidence(app_env):
    at = _where_tab()
    at.checkbox(key="use_sample_mask").uncheck().run()
    _healthy(at)
    assert any(i.value == where_view.MASK_ADDS for i in at.info)
    assert _charts(at) == {"fig_where_confidence"}
    at.checkbox(key="use_sample_mask").check().run()  # the same result, scored again
    _healthy(at)
    assert _charts(at) >= MASK_CHARTS


def test_a_shared_link_opens_the_tab_by_name(app_env):
    at = _where_tab({"tab": TAB})
    assert not at.warning, [w.value for w in at.warning]
    assert at.session_state["result_tab"] == TAB
    assert _charts(at) >= MASK_CHARTS
    assert dict(at.query_params)["tab"] == TAB  # the page writes it back into its link


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (np.full(SIZE, 255, np.uint8), "ignore"),  # all ignore: an explicit empty report
        (np.zeros(SIZE, np.uint8), "small (n=0, too few)"),  # one class: one large object
    ],
    ids=["all-ignore", "one-class"],
)
def test_degenerate_masks_give_notes_or_empty_bins_and_every_view_still_draws(
    app_env, mask, expected
):
    at = _where_tab()
    at.file_uploader(key="mask_upload").set_value(("m.png", _png(mask), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert _charts(at) >= MASK_CHARTS
    report = _report(at)
    text = " ".join(report.notes) + report.to_markdown()
    assert expected in text
