"""The Streamlit explorer (app/explorer.py) driven headlessly with streamlit's AppTest.

Every sidebar control path, a sample run rendering every view, cascade and method changes
served from the stored per-scale outputs without a forward pass, and bad inputs producing an
in-page error while the app keeps working.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import hmsa_core
from app import common
from hmsa_core.checkpoints.native import save_native
from hmsa_core.data.synthscapes import generate_scene
from tests.apptest_env import module_samples, use_samples
from tests.hostile_files import WritesMarker

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
SIZE = (64, 128)  # (H, W) of the test scenes: small, so every run takes about a second
TIMEOUT = 120


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return module_samples(tmp_path_factory, size=SIZE)


@pytest.fixture
def app_env(samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_samples(samples_dir, monkeypatch, tmp_path / "no_models")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    _assert_healthy(at)
    return at


def _assert_healthy(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _charts(at: AppTest) -> set[str]:
    return {getattr(node, "key", None) or node.proto.id for node in at.get("plotly_chart")}


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def _dataframe_columns(at: AppTest) -> list[list[str]]:
    return [list(df.value.columns) for df in at.dataframe]


def _upload_mode(at: AppTest) -> AppTest:
    at.radio(key="image_source").set_value("Upload").run()
    _assert_healthy(at)
    return at


def _open(at: AppTest, tab: str) -> AppTest:
    """Selects a result tab (only the open tab's view runs) and reruns."""
    at.session_state["result_tab"] = tab
    at.run()
    _assert_healthy(at)
    return at


def _iou_columns(at: AppTest) -> list[str] | None:
    for columns in _dataframe_columns(at):
        if columns and columns[0] == "class":
            return columns
    return None


def test_sample_run_renders_every_view(app_env):
    at = _start()
    assert not _errors(at)
    assert [t.label for t in at.tabs] == [
        "Overlay", "Per-scale", "Methods", "IoU", "Cost",
        "Scale preference", "Where scales win", "Pareto", "Attribution", "Downloads",
        "Model vs model",
    ]  # fmt: skip
    assert "Per-scale time" in _captions(at)
    assert at.metric[1].label == "Expected compute"
    assert re.fullmatch(r"\d+(\.\d+)? [KMGT]?FLOPs", at.metric[1].value), at.metric[1].value
    charts = {
        "Overlay": "fig_overlay",
        "Per-scale": "fig_scales",
        "Methods": "fig_methods",
        "IoU": "fig_iou",
        "Cost": "fig_cost",
        "Scale preference": "fig_preference",
        "Where scales win": "fig_where_size",
        "Pareto": "fig_pareto",
    }
    for tab, chart in charts.items():
        _open(at, tab)
        assert not _errors(at), (tab, _errors(at))
        assert chart in _charts(at), (tab, _charts(at))
    _open(at, "IoU")  # the sample's mask is used: one IoU column per compared method
    assert _iou_columns(at) == ["class", "hierarchical", "mean", "max", "single:0.5",
                                "single:1", "single:2"]  # fmt: skip
    _open(at, "Cost")
    cost = next(df.value for df in at.dataframe if "source" in df.value.columns)
    assert list(cost["scale"]) == ["0.5", "1", "2", "total"]
    _open(at, "Attribution")
    assert at.button(key="attr_run")
    _open(at, "Downloads")
    labels = {b.label for b in at.download_button}
    assert {"Mask (PNG)", "Arrays (.npz)", "Metrics (JSON)"} <= labels


def test_cascade_and_method_changes_are_served_without_forward_passes(app_env):
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    at = _start()
    assert at.session_state["hmsa_forward_passes"] == 3  # (0.5, 1, 2) computed once each
    misses = hmsa_core.DEFAULT_SCALE_CACHE.stats().misses

    at.pills(key="scale_pills").set_value([0.5, 1.0]).run()
    _assert_healthy(at)
    at.selectbox(key="method").set_value("mean").run()
    _assert_healthy(at)
    at.pills(key="scale_pills").set_value([0.5, 1.0, 2.0]).run()
    _assert_healthy(at)
    assert at.session_state["hmsa_forward_passes"] == 3
    assert hmsa_core.DEFAULT_SCALE_CACHE.stats().misses == misses
    assert "no forward pass" in _captions(at)
    assert at.session_state["hmsa_result"].method == "mean"
    assert at.session_state["hmsa_result"].cost.cached_scales == (0.5, 1.0, 2.0)
    _open(at, "Cost")
    cost = next(df.value for df in at.dataframe if "source" in df.value.columns)
    assert list(cost["source"][:3]) == ["cached"] * 3

    # a new scale costs exactly one pass; the others stay cached
    at.text_input(key="extra_scales").input("0.75").run()
    _assert_healthy(at)
    assert at.session_state["hmsa_forward_passes"] == 4
    assert at.session_state["hmsa_result"].scales == (0.5, 0.75, 1.0, 2.0)
    assert at.session_state["hmsa_result"].cost.cached_scales == (0.5, 1.0, 2.0)


def test_cascade_change_reuses_the_held_scales_after_the_global_cache_is_cleared(app_env):
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    at = _start()
    assert at.session_state["hmsa_forward_passes"] == 3
    hmsa_core.DEFAULT_SCALE_CACHE.clear()  # as if other sessions had evicted every entry
    misses = hmsa_core.DEFAULT_SCALE_CACHE.stats().misses

    at.text_input(key="extra_scales").input("0.75").run()
    _assert_healthy(at)
    assert not _errors(at)
    assert at.session_state["hmsa_forward_passes"] == 4  # only 0.75 ran
    assert hmsa_core.DEFAULT_SCALE_CACHE.stats().misses == misses + 1  # 0.75 only was looked up
    result = at.session_state["hmsa_result"]
    assert result.scales == (0.5, 0.75, 1.0, 2.0)
    assert result.cost.cached_scales == (0.5, 1.0, 2.0)
    assert "0.5: cached" in _captions(at) and "0.75: cached" not in _captions(at)

    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    at.pills(key="scale_pills").set_value([1.0]).run()  # a subset: re-merged, no pass
    at.pills(key="scale_pills").set_value([0.5, 1.0, 1.5, 2.0]).run()  # one new scale
    _assert_healthy(at)
    assert at.session_state["hmsa_forward_passes"] == 5
    assert at.session_state["hmsa_result"].scales == (0.5, 0.75, 1.0, 1.5, 2.0)


@pytest.mark.parametrize(
    ("extra", "pills", "message"),
    [
        ("5", [0.5, 1.0], "above the maximum"),
        ("abc", [0.5, 1.0], "not a number"),
        ("", [], "empty"),
        ("0.01", [1.0], "minimum side"),
    ],
)
def test_bad_cascade_shows_an_error_and_the_app_recovers(app_env, extra, pills, message):
    at = _start()
    at.pills(key="scale_pills").set_value(pills)
    at.text_input(key="extra_scales").input(extra).run()
    _assert_healthy(at)
    assert any(message in e for e in _errors(at)), _errors(at)
    assert not at.get("plotly_chart")
    at.pills(key="scale_pills").set_value([0.5, 1.0])
    at.text_input(key="extra_scales").input("").run()
    _assert_healthy(at)
    assert not _errors(at)
    assert at.get("plotly_chart")


def test_uploaded_image_and_mask_are_scored(app_env):
    scene = generate_scene(7, seed=5, size=SIZE)
    at = _upload_mode(_start())
    assert "Choose an image" in _captions(at)
    at.file_uploader(key="image_upload").set_value(("street.png", _png(scene.image), "image/png"))
    at.run()
    _assert_healthy(at)
    assert not _errors(at)
    _open(at, "IoU")
    assert _iou_columns(at) is None  # no mask yet
    mask = scene.mask.astype(np.uint8)
    at.file_uploader(key="mask_upload").set_value(("street_mask.png", _png(mask), "image/png"))
    at.run()
    _assert_healthy(at)
    assert not _errors(at)
    assert _iou_columns(at) is not None
    assert np.array_equal(at.session_state["hmsa_result"].image, scene.image)


def test_bad_image_upload_shows_an_error_and_the_app_keeps_working(app_env):
    at = _upload_mode(_start())
    uploader = at.file_uploader(key="image_upload")
    uploader.set_value(("photo.png", b"this is not an image", "image/png")).run()
    _assert_healthy(at)
    assert any("not a readable image" in e for e in _errors(at)), _errors(at)
    assert not at.get("plotly_chart")
    scene = generate_scene(1, size=SIZE)
    at.file_uploader(key="image_upload").set_value(("ok.png", _png(scene.image), "image/png"))
    at.run()
    _assert_healthy(at)
    assert not _errors(at)
    assert at.get("plotly_chart")


def test_too_large_image_is_refused(app_env, monkeypatch):
    monkeypatch.setenv("HMSA_MAX_PIXELS", "1000")  # the 64 x 128 samples are over it
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    _assert_healthy(at)
    assert any("too large" in e for e in _errors(at)), _errors(at)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((10, 10), np.uint8), "mask is 10 x 10"),
        (np.full(SIZE, 77, np.uint8), "77"),
        (None, "not a readable image"),
    ],
)
def test_bad_mask_shows_an_error_and_the_prediction_still_shows(app_env, mask, message):
    at = _start()
    data = b"not a png" if mask is None else _png(mask)
    at.file_uploader(key="mask_upload").set_value(("m.png", data, "image/png")).run()
    _assert_healthy(at)
    assert any(message in e for e in _errors(at)), _errors(at)
    assert at.get("plotly_chart")  # the result is still drawn, only without scores


@pytest.mark.parametrize(
    ("mask", "message"),
    [(np.zeros((10, 10), np.uint8), "mask is 10 x 10"), (np.full(SIZE, 77, np.uint8), "77")],
    ids=["size", "class-ids"],
)
def test_uploaded_mask_is_validated_before_the_cascade_runs(app_env, monkeypatch, mask, message):
    events: list[str] = []
    read_mask, extend = common.read_mask, hmsa_core.extend

    def recording_read_mask(*args, **kwargs):
        try:
            return read_mask(*args, **kwargs)
        finally:
            events.append("mask validated")

    def recording_extend(*args, **kwargs):
        events.append("cascade")
        return extend(*args, **kwargs)

    monkeypatch.setattr(common, "read_mask", recording_read_mask)
    monkeypatch.setattr(hmsa_core, "extend", recording_extend)
    scene = generate_scene(9, seed=4, size=SIZE)
    at = _upload_mode(_start())
    events.clear()
    at.file_uploader(key="image_upload").set_value(("new.png", _png(scene.image), "image/png"))
    at.file_uploader(key="mask_upload").set_value(("m.png", _png(mask), "image/png")).run()
    _assert_healthy(at)
    assert any(message in e for e in _errors(at)), _errors(at)
    assert events[:2] == ["mask validated", "cascade"], events  # the error came first

    at.toggle(key="auto_run").set_value(False).run()  # manual mode: the error shows at once,
    at.text_input(key="extra_scales").input("1.5").run()  # before any new pass
    _assert_healthy(at)
    assert any(message in e for e in _errors(at)), _errors(at)
    assert any("Press Run" in i.value for i in at.info)
    assert at.session_state["hmsa_result"].scales == (0.5, 1.0, 2.0)


def test_sample_choice_and_its_mask_toggle(app_env):
    at = _start()
    first = at.session_state["hmsa_result"].image
    at.selectbox(key="sample_name").set_value("synthscapes_val_001").run()
    _assert_healthy(at)
    assert not np.array_equal(at.session_state["hmsa_result"].image, first)
    _open(at, "IoU")
    assert _iou_columns(at) is not None
    at.checkbox(key="use_sample_mask").uncheck().run()
    _assert_healthy(at)
    assert _iou_columns(at) is None
    assert any("No ground-truth mask" in i.value for i in at.info)


def test_maximum_side_resizes_the_input_and_its_mask(app_env):
    at = _start()
    at.number_input(key="max_side").set_value(32).run()
    _assert_healthy(at)
    assert not _errors(at)
    assert at.session_state["hmsa_result"].size == (16, 32)
    assert "resized from 128 x 64" in _captions(at)
    _open(at, "IoU")
    assert not _errors(at)
    assert _iou_columns(at) is not None  # the mask was resized with the image


def test_model_choice_switches_methods(app_env):
    at = _start()
    names = at.selectbox(key="model_name").options
    explicit = next(n for n in names if n.startswith("explicit"))
    at.selectbox(key="model_name").set_value(explicit).run()
    _assert_healthy(at)
    assert not _errors(at)
    assert at.selectbox(key="method").value == "explicit"
    assert "hierarchical" not in at.multiselect(key="compare_methods").options
    assert at.session_state["hmsa_result"].method == "explicit"
    # explicit attention only runs its training cascade: another one is reported, not crashed
    at.pills(key="scale_pills").set_value([0.5, 1.0]).run()
    _assert_healthy(at)
    assert any("explicit" in e for e in _errors(at)), _errors(at)
    at.selectbox(key="method").set_value("mean").run()
    _assert_healthy(at)
    assert not _errors(at)


def test_compared_methods_follow_the_selection(app_env):
    at = _start()
    at.multiselect(key="compare_methods").set_value(["hierarchical", "max"]).run()
    _open(at, "IoU")
    assert _iou_columns(at) == ["class", "hierarchical", "max"]


def test_iou_table_ends_with_the_miou_of_each_method_in_percent(app_env):
    at = _open(_start(), "IoU")
    table = next(df.value for df in at.dataframe if list(df.value.columns)[:1] == ["class"])
    assert table["class"].iloc[-1] == "mIoU"
    result = at.session_state["hmsa_result"]
    derived = at.session_state["hmsa_derived"]
    comparison = next(v for k, v in derived.items() if k[0] == "comparison")
    miou = comparison.scores["hierarchical"].miou
    assert table["hierarchical"].iloc[-1] == pytest.approx(round(100 * miou, 2))
    assert set(table["class"].iloc[:-1]) <= set(result.labels.names)


def test_manual_run_mode_waits_for_the_button(app_env):
    at = _start()
    passes = at.session_state["hmsa_forward_passes"]
    at.toggle(key="auto_run").set_value(False).run()
    at.text_input(key="extra_scales").input("1.5").run()
    _assert_healthy(at)
    assert any("Press Run" in i.value for i in at.info)
    assert at.session_state["hmsa_forward_passes"] == passes
    assert at.metric[2].label == "To compute now"
    run_button = next(b for b in at.button if b.label == "Run")
    run_button.click().run()
    _assert_healthy(at)
    assert at.session_state["hmsa_forward_passes"] == passes + 1
    assert 1.5 in at.session_state["hmsa_result"].scales


def test_about_panel_names_the_model_and_its_training_data(app_env):
    at = _start()
    about = at.expander[0]
    text = "\n".join(m.value for m in about.markdown)
    assert "HMSA" in text
    name = at.selectbox(key="model_name").value
    assert name in text
    assert ("SynthScapes" in text) or ("Random weights" in text)


def test_attribution_runs_on_a_button_press(app_env):
    pytest.importorskip("analysis.attribution")
    at = _open(_start(), "Attribution")
    assert "fig_attribution" not in _charts(at)
    at.button(key="attr_run").click().run()
    _assert_healthy(at)
    assert not _errors(at)
    assert "fig_attribution" in _charts(at)


def test_attribution_never_offers_the_unused_attention_of_the_largest_scale(app_env):
    at = _open(_start(), "Attribution")
    assert at.selectbox(key="attr_target").options == ["logits", "attention"]
    assert at.selectbox(key="attr_scale_logits").options == ["0.5", "1", "2"]
    at.selectbox(key="attr_target").set_value("attention").run()
    _assert_healthy(at)
    assert at.selectbox(key="attr_scale_attention").options == ["0.5", "1"]
    assert "never uses its attention" in _captions(at)
    at.selectbox(key="attr_scale_attention").set_value(0.5)
    at.button(key="attr_run").click().run()
    _assert_healthy(at)
    assert not _errors(at) and "fig_attribution" in _charts(at)
    stored = at.session_state["hmsa_attribution"][1]
    assert stored.target == "attention" and stored.scale == 0.5
    assert stored.map.shape == at.session_state["hmsa_result"].size

    at.pills(key="scale_pills").set_value([1.0]).run()  # one scale: no attention is used
    _assert_healthy(at)
    assert not _errors(at)
    assert at.selectbox(key="attr_target").options == ["logits"]
    assert "uses no attention" in _captions(at)


def test_large_pareto_sweep_waits_for_a_button_and_needs_no_forward_pass(app_env):
    at = _open(_start(), "Pareto")
    at.pills(key="scale_pills").set_value(list(common.SCALE_CHOICES)).run()
    _assert_healthy(at)
    passes = at.session_state["hmsa_forward_passes"]
    assert "fig_pareto" not in _charts(at)  # 63 sub-cascades: not merged until asked
    at.button(key="pareto_run").click().run()
    _assert_healthy(at)
    assert not _errors(at)
    assert "fig_pareto" in _charts(at)
    assert at.session_state["hmsa_forward_passes"] == passes
    at.multiselect(key="pareto_methods").set_value(["hierarchical", "mean"]).run()
    assert "fig_pareto" not in _charts(at)  # a new, larger sweep waits again


def test_report_download_is_offered(app_env):
    pytest.importorskip("analysis.report")
    at = _open(_start(), "Downloads")
    assert "Report (HTML)" in {b.label for b in at.download_button}


def test_heavy_cascade_waits_for_the_run_button_even_in_automatic_mode(app_env, monkeypatch):
    monkeypatch.setenv("HMSA_AUTO_RUN_GFLOPS", "0.000001")
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    _assert_healthy(at)
    assert any("Press Run" in i.value and "GFLOPs" in i.value for i in at.info)
    assert at.session_state["hmsa_forward_passes"] == 0
    assert at.metric[1].label == "Expected compute"  # the estimate is shown before running
    next(b for b in at.button if b.label == "Run").click().run()
    _assert_healthy(at)
    assert at.session_state["hmsa_forward_passes"] == 3
    assert "fig_overlay" in _charts(at)


def test_unreadable_checkpoint_is_listed_and_reported(app_env, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.pth").write_bytes(b"definitely not a checkpoint")
    monkeypatch.setenv("HMSA_MODELS_DIR", str(models))
    at = _start()
    assert "broken.pth" in at.selectbox(key="model_name").options
    at.selectbox(key="model_name").set_value("broken.pth").run()
    _assert_healthy(at)
    assert any("cannot be loaded" in e for e in _errors(at)), _errors(at)
    at.selectbox(key="model_name").set_value(at.selectbox(key="model_name").options[0]).run()
    _assert_healthy(at)
    assert not _errors(at)
    assert "fig_overlay" in _charts(at)


def _hostile_checkpoints(folder: Path, marker: Path) -> dict[str, str]:
    """Writes the hostile checkpoints into ``folder``; returns file name -> a pattern of the
    reason the page must give."""
    import torch

    folder.mkdir()
    save_native(hmsa_core.build("lite", num_classes=19), folder / "whole.safetensors")
    data = (folder / "whole.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "whole.safetensors").unlink()
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(other.state_dict(), folder / "resnet_like.pth")
    torch.save({"state_dict": other.state_dict(), "num_classes": 19}, folder / "other_net.pth")
    payload = {"state_dict": {"module.x": torch.zeros(2)}, "num_classes": 19,
               "mean_iu": WritesMarker(marker)}  # fmt: skip
    torch.save(payload, folder / "evil.pth")
    return {
        "truncated.safetensors": "truncated.safetensors",
        "resnet_like.pth": "resnet_like.pth",
        "other_net.pth": "other_net.pth.*(missing|unexpected)",
        "evil.pth": "exec",
    }


def test_hostile_checkpoints_show_clear_errors_and_never_run_code(app_env, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(WritesMarker(tmp_path / "control")))
    assert (tmp_path / "control").exists(), (
        "the payload must be live for this test to mean anything"
    )
    cases = _hostile_checkpoints(tmp_path / "models", marker)
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "models"))
    at = _start()
    bundled = at.selectbox(key="model_name").options[0]
    assert set(cases) <= set(at.selectbox(key="model_name").options)
    for name, pattern in cases.items():
        at.selectbox(key="model_name").set_value(name).run()
        _assert_healthy(at)
        errors = _errors(at)
        print(f"\n{name}: {errors}")
        assert any("cannot be loaded" in e and re.search(pattern, e) for e in errors), errors
        assert not at.get("plotly_chart")  # nothing ran with it
        assert not marker.exists()
        at.selectbox(key="model_name").set_value(bundled).run()  # the app keeps working
        _assert_healthy(at)
        assert not _errors(at)
        assert "fig_overlay" in _charts(at)
    at.selectbox(key="sample_name").set_value("synthscapes_val_001").run()
    _assert_healthy(at)
    assert not _errors(at) and "fig_overlay" in _charts(at)
    assert not marker.exists()
