"""Shareable explorer views: the URL query round trip (app/explorer_parts/query.py and the main
page through AppTest), hostile query values falling back to defaults with a notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import common
from app.explorer_parts import query
from hmsa_core.limits import DEFAULT_LIMITS
from tests.apptest_env import explorer_samples

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
TABS = ("Overlay", "Per-scale", "IoU", "Model vs model")
KNOWN = query.KnownNames(
    models=("hmsa-lite", "explicit-lite"),
    samples=("synthscapes_val_000", "photo_astronaut"),
    tabs=TABS,
    limits=DEFAULT_LIMITS,
)


def test_view_round_trips_through_query_parameters():
    view = query.SharedView(
        "explicit-lite", "photo_astronaut", (0.25, 0.5, 1.0), "single:0.5", "IoU"
    )
    params = query.to_params(view)
    assert params == {
        "model": "explicit-lite",
        "image": "photo_astronaut",
        "cascade": "0.25,0.5,1",
        "method": "single:0.5",
        "tab": "IoU",
    }
    parsed, notices = query.parse_view(params, KNOWN)
    assert (parsed, notices) == (view, [])
    assert query.parse_view({k: [v] for k, v in params.items()}, KNOWN) == (view, [])


def test_missing_parameters_keep_the_defaults_silently():
    assert query.parse_view({}, KNOWN) == (query.SharedView(), [])
    assert query.parse_view({"embed": "true", "utm": "x"}, KNOWN) == (query.SharedView(), [])
    assert query.to_params(query.SharedView()) == {}


@pytest.mark.parametrize(
    ("params", "notice"),
    [
        ({"model": "../../../etc/passwd"}, "Unknown model"),
        ({"model": "hmsa-lite; rm -rf /"}, "Unknown model"),
        ({"image": "../assets/models/hmsa_lite_synthscapes"}, "Unknown sample image"),
        ({"image": "<script>alert(1)</script>"}, "Unknown sample image"),
        ({"cascade": "0.5,abc"}, "not usable"),
        ({"cascade": "0.5,nan"}, "not usable"),
        ({"cascade": "1e309"}, "not usable"),
        ({"cascade": "-1,2"}, "not usable"),
        ({"cascade": ",".join(["1"] + [f"1.{i}" for i in range(1, 40)])}, "not usable"),
        ({"method": "__import__('os')"}, "Unknown merge method"),
        ({"method": "single:nan"}, "Unknown merge method"),
        ({"method": "single:-2"}, "Unknown merge method"),
        ({"tab": "Secrets"}, "Unknown tab"),
        ({"tab": ["IoU", "Overlay"]}, "given 2 times"),
        ({"model": "x" * 5000}, "too long"),
        ({"image": "synthscapes_val_000\x00"}, "not printable"),
    ],
)
def test_hostile_values_fall_back_to_defaults_with_a_notice(params, notice):
    view, notices = query.parse_view(params, KNOWN)
    assert view == query.SharedView()
    assert len(notices) == 1 and notice in notices[0]
    assert len(notices[0]) < 400  # the hostile value is shown shortened


def test_a_bad_value_drops_only_itself():
    params = {"model": "explicit-lite", "cascade": "0.5,zzz", "tab": "IoU"}
    view, notices = query.parse_view(params, KNOWN)
    assert view == query.SharedView(model="explicit-lite", tab="IoU")
    assert len(notices) == 1


def test_method_the_model_cannot_merge_is_dropped_with_a_notice():
    view = query.SharedView(model="explicit-lite", method="hierarchical")
    kept, notice = query.check_method(view, ["explicit", "mean", "max"])
    assert kept.method is None and kept.model == "explicit-lite"
    assert notice is not None and "hierarchical" in notice
    assert query.check_method(view, ["hierarchical"]) == (view, None)


def test_widget_values_split_the_cascade_into_toggles_and_free_text():
    view = query.SharedView(
        "hmsa-lite", "synthscapes_val_000", (0.33, 0.5, 1.0, 3.0), "mean", "IoU"
    )
    values = query.widget_values(view, (0.25, 0.5, 1.0, 2.0), "Bundled sample", "result_tab")
    assert values == {
        "model_name": "hmsa-lite",
        "image_source": "Bundled sample",
        "sample_name": "synthscapes_val_000",
        "scale_pills": [0.5, 1.0],
        "extra_scales": "0.33, 3",
        "method": "mean",
        "result_tab": "IoU",
    }
    assert common.build_cascade(values["scale_pills"], values["extra_scales"]) == view.cascade


# --------------------------------------------------------------------------- the page


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return explorer_samples(tmp_path, monkeypatch, count=2)


def _run(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> dict[str, object]:
    return {
        "model": at.selectbox(key="model_name").value,
        "image": at.selectbox(key="sample_name").value,
        "cascade": [c for c in at.caption.values if c.startswith("Cascade:")],
        "method": at.selectbox(key="method").value,
        "tab": at.session_state["result_tab"],
    }


def test_the_page_writes_its_view_and_a_link_reproduces_it(app_env):
    at = _run({})
    at.selectbox(key="model_name").set_value("explicit-lite").run()
    at.selectbox(key="sample_name").set_value("synthscapes_val_001").run()
    at.text_input(key="extra_scales").set_value("0.75").run()
    at.selectbox(key="method").set_value("mean").run()
    at.session_state["result_tab"] = "IoU"
    at.run()
    assert not at.exception and not at.warning
    link = dict(at.query_params)
    assert link == {
        "model": "explicit-lite",
        "image": "synthscapes_val_001",
        "cascade": "0.5,0.75,1,2",
        "method": "mean",
        "tab": "IoU",
    }
    shared = _run(link)  # a new session opening the link
    assert not shared.warning
    assert _shown(shared) == _shown(at)
    assert "Cascade: (0.5, 0.75, 1, 2)" in shared.caption.values
    assert "**Per-class IoU (%)**" in shared.markdown.values  # only the open tab's view runs
    assert dict(shared.query_params) == link


def test_a_hostile_link_falls_back_to_defaults_with_notices_and_the_page_works(app_env):
    at = _run(
        {
            "model": "../../etc/passwd",
            "image": "<img src=x onerror=alert(1)>",
            "cascade": "0.5,1e999",
            "method": "eval(1)",
            "tab": "Admin",
        }
    )
    notices = [w.value for w in at.warning]
    assert len(notices) == 5
    for word in ("model", "sample image", "Cascade", "merge method", "tab"):
        assert any(word in n for n in notices), word
    assert at.selectbox(key="model_name").value == "hmsa-lite"
    assert at.selectbox(key="sample_name").value == "synthscapes_val_000"
    assert "Cascade: (0.5, 1, 2)" in at.caption.values
    assert not at.error
    assert dict(at.query_params)["model"] == "hmsa-lite"  # the URL now names the real view
    at.selectbox(key="method").set_value("mean").run()
    assert not at.warning  # the notices go once the user changes the view


def test_a_method_the_linked_model_cannot_merge_falls_back_with_a_notice(app_env):
    at = _run({"model": "explicit-lite", "method": "hierarchical"})
    assert any("not available for this model" in w.value for w in at.warning)
    assert at.selectbox(key="model_name").value == "explicit-lite"
    assert at.selectbox(key="method").value == "explicit"


def test_flip_travels_in_the_link_and_a_bad_value_leaves_it_off():
    view = query.SharedView("hmsa-lite", cascade=(0.5, 1.0), flip=True)
    assert query.to_params(view) == {"model": "hmsa-lite", "cascade": "0.5,1", "flip": "1"}
    assert query.parse_view(query.to_params(view), KNOWN) == (view, [])
    assert query.parse_view({"flip": "0"}, KNOWN)[0].flip is False
    assert query.to_params(query.SharedView(flip=False)) == {}  # off: no parameter
    view, notices = query.parse_view({"flip": "maybe"}, KNOWN)
    assert view.flip is None and len(notices) == 1 and "neither 1 nor 0" in notices[0]
    widgets = query.widget_values(query.SharedView(flip=True), [0.5, 1.0], "Bundled", "tab")
    assert widgets == {query.KEY_FLIP: True}


def test_a_flip_link_runs_the_mirrored_passes_and_switching_flip_off_needs_no_pass(app_env):
    at = _run({"cascade": "0.5,1", "flip": "1"})
    assert at.toggle(key="flip").value is True
    result = at.session_state["hmsa_result"]
    assert result.flip and result.has_flips
    assert [c.flipped for c in result.cost.per_scale] == [False, True, False, True]
    passes = at.session_state["hmsa_forward_passes"]
    assert passes == 4  # each scale and its mirrored pass
    assert dict(at.query_params)["flip"] == "1"
    at.toggle(key="flip").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    plain = at.session_state["hmsa_result"]
    assert not plain.flip and at.session_state["hmsa_forward_passes"] == passes  # re-merged
    assert "flip" not in dict(at.query_params)
    assert not plain.logits.equal(result.logits)  # the mirrored passes changed the merge


def test_gate_and_criterion_travel_in_the_link_and_bad_values_fall_back():
    view = query.SharedView("hmsa-lite", cascade=(0.5, 1.0), gate=0.3, gate_by="attention")
    params = query.to_params(view)
    assert params == {
        "model": "hmsa-lite",
        "cascade": "0.5,1",
        "gate": "0.3",
        "gate_by": "attention",
    }
    assert query.parse_view(params, KNOWN) == (view, [])
    # defaults (no gate, the exact bound) write no parameter
    assert query.to_params(query.SharedView(gate=0.0, gate_by="bound")) == {}
    assert query.parse_view({"gate": "0.333"}, KNOWN)[0].gate == 0.33  # the slider's step
    for bad in ("0.9", "-0.1", "nan", "inf", "abc"):
        view, notices = query.parse_view({"gate": bad}, KNOWN)
        assert view.gate is None and len(notices) == 1 and "gating is left off" in notices[0]
    view, notices = query.parse_view({"gate": "0.2", "gate_by": "__import__('os')"}, KNOWN)
    assert (view.gate, view.gate_by) == (0.2, None)
    assert len(notices) == 1 and "Unknown gate criterion" in notices[0]
    widgets = query.widget_values(
        query.SharedView(gate=0.2, gate_by="confidence"), [0.5, 1.0], "Bundled", "tab"
    )
    assert widgets == {query.KEY_GATE: 0.2, query.KEY_GATE_BY: "confidence"}


def test_a_gated_link_runs_gated_and_the_page_writes_the_gate_back(app_env, monkeypatch):
    monkeypatch.setenv("HMSA_GATE_TILE", "32")
    link = {"cascade": "0.5,1", "gate": "0.45", "gate_by": "attention"}
    at = _run(link)
    assert not at.warning
    assert at.slider(key="gate").value == pytest.approx(0.45)
    assert at.radio(key="gate_by").value == "attention"
    result = at.session_state["hmsa_result"]
    assert (result.cost.gate_by, result.cost.gate) == ("attention", pytest.approx(0.45))
    assert result.gate_approximate
    assert {k: dict(at.query_params)[k] for k in link} == link
    at.radio(key="gate_by").set_value("confidence").run()
    assert not at.exception, [e.value for e in at.exception]
    assert dict(at.query_params)["gate_by"] == "confidence"
    assert at.session_state["hmsa_result"].cost.gate_by == "confidence"
    at.slider(key="gate").set_value(0.0).run()
    assert "gate" not in dict(at.query_params)
    bad = _run({"gate": "7", "gate_by": "guess"})
    notices = [w.value for w in bad.warning]
    assert len(notices) == 2 and any("gating is left off" in n for n in notices)
    assert bad.slider(key="gate").value == 0.0 and bad.radio(key="gate_by").value == "bound"
