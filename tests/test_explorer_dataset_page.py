"""The explorer's dataset page (app/pages/1_Dataset.py) through streamlit's AppTest: a run on a
small SynthScapes slice stopped half-way, reopened from disk in a new session, a row opened on
the main page with its mask, and a command-line sweep CSV shown in the same views."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import hmsa_core
from analysis import dataset_jobs, dataset_runs
from analysis.dataset_sources import DataSource
from hmsa_core.data.synthscapes import SynthScapes
from tests.apptest_env import explorer_samples, healthy, open_page, progress_text, rerun_until

PAGE = "pages/1_Dataset.py"
SCENES = 60  # enough that the run is still going when Stop is pressed
SIZE = (64, 128)
#: The where views of a run (app/explorer_parts/where_view.py with the "ds_where" prefix).
WHERE_CHARTS = (
    "fig_ds_where_size",
    "fig_ds_where_size_weight",
    "fig_ds_where_trimap",
    "fig_ds_where_boundary_iou",
    "fig_ds_where_boundary_weight",
    "fig_ds_where_reliability",
)


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    explorer_samples(tmp_path, monkeypatch, size=SIZE)
    results = tmp_path / "results"
    monkeypatch.setenv(dataset_runs.RESULTS_DIR_ENV, str(results))
    return results


def _dataset_page(count: int = SCENES) -> AppTest:
    at = open_page(PAGE)
    at.number_input(key="ds_count").set_value(count)
    at.selectbox(key="ds_size").set_value(SIZE)
    at.text_input(key="ds_cascades").set_value("0.5;1;0.5,1;0.5,1,2")
    at.run()
    return healthy(at)


def _scored(progress: str) -> bool:
    """Returns True once the progress bar's text says an image was scored."""
    return bool(progress) and not progress.startswith("0 of")


def test_run_stop_halfway_reopen_from_disk_and_open_a_row(app_env):
    at = _dataset_page()
    assert any("Nothing stored" in i.value for i in at.info)
    at.button(key="ds_run").click().run()
    healthy(at)
    rerun_until(at, lambda a: _scored(progress_text(a)), "the run never scored an image")
    assert f"of {SCENES} images done" in progress_text(at) and "ETA" in progress_text(at)
    at.button(key="ds_stop").click().run()
    healthy(at)
    status = " ".join(w.value for w in at.warning)
    assert "Stopped after" in status and f"of {SCENES} image(s)" in status
    found = re.search(r"Stopped after (\d+) of", status)
    assert found is not None
    done = int(found.group(1))
    assert 1 <= done < SCENES
    assert not any(j.running for j in dataset_jobs._JOBS.values())
    assert at.button(key="ds_run").label == f"Continue ({done} of {SCENES} stored)"
    charts = {c.proto.id for c in at.get("plotly_chart") if "ds_where" not in c.proto.id}
    assert len(charts) == 2  # the Pareto chart and the scale-preference heatmap
    assert len(at.get("plotly_chart")) == 2 + len(WHERE_CHARTS)  # and the run's where views
    pareto = [c for c in at.get("plotly_chart") if "Pareto frontier" in c.proto.spec]
    assert pareto and f"over {done} image(s)" in pareto[0].proto.spec
    iou, images = at.dataframe[0].value, at.dataframe[1].value
    assert iou.columns[0] == "class" and "hierarchical (0.5, 1, 2)" in iou.columns
    # a one-scale cascade is one prediction whatever the merge: one column each, "single <s>"
    assert [c for c in iou.columns if "(0.5)" in c or "(1)" in c] == []
    assert [c for c in iou.columns if c.startswith("single")] == ["single 0.5", "single 1"]
    points = [
        label
        for trace in json.loads(pareto[0].proto.spec)["data"]
        if trace["name"] != "Pareto frontier"
        for label in trace["text"]
    ]
    assert points.count("single 0.5") == 1 and not any("(0.5)" in p for p in points)
    assert len(images) == done
    assert list(images["gain (mIoU points)"]) == sorted(images["gain (mIoU points)"], reverse=True)
    assert all(uri.startswith("data:image/png;base64,") for uri in images["image"])

    dataset_jobs._JOBS.clear()  # as in a new process: only the disk holds the run
    reopened = _dataset_page()
    assert f"Stopped after {done} of {SCENES}" in " ".join(w.value for w in reopened.warning)
    assert len(reopened.dataframe[1].value) == done
    assert not dataset_jobs._JOBS  # reopening ran nothing

    best = reopened.dataframe[1].value.iloc[0]
    reopened.selectbox(key="ds_open_pick").set_value(int(best["name"].rsplit("/", 1)[1]))
    reopened.button(key="ds_open").click().run()
    healthy(reopened)
    assert reopened.title.values == ["HMSA Explorer"]  # now on the main page
    assert reopened.radio(key="image_source").value == "Dataset image"
    assert f"{best['name']}, opened from the dataset page" in reopened.caption.values
    assert reopened.checkbox(key="use_dataset_mask").value
    assert "Cascade: (0.5, 1, 2)" in reopened.caption.values
    index = int(best["name"].rsplit("/", 1)[1])
    scene = SynthScapes("val", SCENES, SIZE)[index]
    assert f"Input: {SIZE[1]} x {SIZE[0]} px" in reopened.caption.values
    reopened.session_state["result_tab"] = "IoU"
    reopened.switch_page("explorer.py").run()  # AppTest's next run stays on the main page
    healthy(reopened)
    table = [df.value for df in reopened.dataframe if df.value.columns[0] == "class"]
    assert table, "the IoU view needs the opened image's mask"
    miou = table[0].set_index("class").loc["mIoU", "hierarchical"]
    assert miou == pytest.approx(best["hierarchical mIoU (%)"], abs=0.01)
    assert scene.mask is not None


def _run_to_the_end(at: AppTest, count: int) -> AppTest:
    """Presses Run and reruns the page until it says the run of ``count`` images is complete."""
    at.button(key="ds_run").click().run()
    complete = f"Complete: {count} of {count}"
    return rerun_until(
        at, lambda a: any(complete in s.value for s in a.success), "the run did not finish"
    )


def _chart_keys(at: AppTest) -> set[str]:
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def test_the_run_shows_where_scales_win_and_sorts_images_by_small_object_gain(app_env):
    at = _dataset_page(count=3)
    _run_to_the_end(at, 3)
    healthy(at)
    assert set(WHERE_CHARTS) <= _chart_keys(at), _chart_keys(at)
    (where_file,) = app_env.glob("*/where.json")
    stored = dataset_runs.load_run(where_file.parent)
    assert stored is not None
    where = stored.where()
    assert where is not None and where.report is not None and where.report.num_images == 3
    ece = next(df.value for df in at.dataframe if "ECE (%)" in df.value.columns)
    assert list(ece["ECE (%)"]) == [
        round(100 * where.report.calibration.ece(m), 2) for m in ece["method"]
    ]
    assert any("3 image(s); objects from" in c for c in at.caption.values)

    images = at.dataframe[1].value
    assert list(images["gain (mIoU points)"]) == sorted(images["gain (mIoU points)"], reverse=True)
    at.radio(key="ds_image_order").set_value("small-object recall gain").run()
    healthy(at)
    images = at.dataframe[1].value
    by_name = {stored.records[k].name: k for k in range(stored.done)}
    ranked = [i for i, _ in where.ranking()]
    assert [stored.records[by_name[n]].index for n in images["name"]] == ranked
    gains = [g for g in images["small-object recall gain (points)"] if g == g and g is not None]
    assert gains == sorted(gains, reverse=True) and gains
    assert any("small-object recall gain" in m for m in at.markdown.values)

    # opened on the main page, the tab takes the scene's instances and camera distances
    at.button(key="ds_open").click().run()
    at.session_state["result_tab"] = "Where scales win"
    at.switch_page("explorer.py").run()
    healthy(at)
    assert "camera distance (m)" in at.radio(key="where_size_by").options
    assert any("objects from instances" in c for c in at.caption.values), at.caption.values
    at.radio(key="where_size_by").set_value("distance").run()
    healthy(at)
    assert "fig_where_size" in _chart_keys(at)


def test_the_flip_axis_draws_every_cascade_with_and_without_flip(app_env):
    at = _dataset_page(count=2)
    at.checkbox(key="ds_flip").check().run()
    _run_to_the_end(at, 2)
    healthy(at)
    pareto = next(c for c in at.get("plotly_chart") if "Pareto frontier" in c.proto.spec)
    traces = {t["name"]: t for t in json.loads(pareto.proto.spec)["data"]}
    assert {"hierarchical", "hierarchical + flip", "single", "single + flip"} <= set(traces)
    assert len(traces["hierarchical + flip"]["x"]) == len(traces["hierarchical"]["x"]) == 2
    doubled = sorted(traces["hierarchical + flip"]["x"])
    assert doubled == pytest.approx([2 * x for x in sorted(traces["hierarchical"]["x"])])
    iou = at.dataframe[0].value
    assert "hierarchical + flip (0.5, 1, 2)" in iou.columns and "single 1 + flip" in iou.columns


def test_a_command_line_sweep_csv_shows_in_the_same_views(app_env, tmp_path):
    model = hmsa_core.load_model("hmsa-lite")
    spec = dataset_runs.make_spec(
        "hmsa-lite",
        "cli",
        DataSource("synthscapes", count=2, size=SIZE),
        [(0.5,), (1.0,), (0.5, 1.0)],
        ["hierarchical", "mean"],
    )
    csv_path = dataset_runs.run_dataset(spec, model).table().to_csv(tmp_path / "cli.csv")
    at = open_page(PAGE)
    at.radio(key="ds_source").set_value("Sweep CSV (command line)").run()
    healthy(at)
    assert any("Upload a sweep CSV" in i.value for i in at.info)
    at.file_uploader(key="ds_csv").upload("bad.csv", b"a,b\n1,2\n", "text/csv").run()
    assert any("missing column" in e.value for e in at.error)
    uploader = at.get("file_uploader")[0]
    assert uploader.proto.type == [".csv"]
    at.file_uploader(key="ds_csv").upload(csv_path.name, csv_path.read_bytes(), "text/csv").run()
    healthy(at)
    assert any("command-line sweep over 2 image(s)" in i.value for i in at.info)
    assert any("Pareto frontier" in c.proto.spec for c in at.get("plotly_chart"))
    assert at.dataframe[0].value.columns[0] == "class"


def test_a_bad_folder_says_what_to_fix_and_the_page_keeps_working(app_env, tmp_path):
    at = open_page(PAGE)
    at.radio(key="ds_source").set_value("Folder of images with masks").run()
    at.text_input(key="ds_location").set_value(str(tmp_path / "missing")).run()
    assert not at.exception
    assert any("not a folder" in e.value for e in at.error)
    assert not at.button  # nothing to run until the source is readable
    empty = tmp_path / "empty"
    empty.mkdir()
    at.text_input(key="ds_location").set_value(str(empty)).run()
    assert any("no images" in e.value for e in at.error)
    at.radio(key="ds_source").set_value("SynthScapes val").run()
    healthy(at)


def test_server_folders_can_be_withheld_from_visitors(app_env, monkeypatch):
    monkeypatch.setenv("HMSA_DATASET_FOLDERS", "0")
    at = open_page(PAGE)
    healthy(at)
    assert at.radio(key="ds_source").options == ["SynthScapes val", "Sweep CSV (command line)"]
