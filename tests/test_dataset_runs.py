"""Dataset runs (analysis.dataset_runs): a sweep stored per image on disk, stopped and resumed,
reopened from disk, ranked by HMSA's gain, and sweep CSVs from the command line read back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hmsa_core
from analysis import dataset_runs
from analysis.dataset_jobs import start_job
from analysis.dataset_sources import DataSource
from analysis.metrics import score_prediction
from analysis.sweep import SweepTable, sweep
from hmsa_core.data.synthscapes import SynthScapes, generate_scene

SIZE = (64, 128)
CASCADES = [(0.5, 1.0), (0.5, 1.0, 2.0)]
METHODS = ["hierarchical", "mean"]


@pytest.fixture(scope="module")
def model():
    return hmsa_core.load_model("hmsa-lite")


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "results"
    monkeypatch.setenv(dataset_runs.RESULTS_DIR_ENV, str(folder))
    return folder


def _spec(count: int = 4, methods=METHODS, data: DataSource | None = None):
    source = data or DataSource("synthscapes", count=count, size=SIZE)
    return dataset_runs.make_spec("hmsa-lite", "weights-v1", source, CASCADES, methods)


def test_stopped_run_keeps_its_images_and_resumes_to_the_sweep_of_every_image(model, results):
    spec = _spec(4)
    seen: list[tuple[int, int]] = []

    def stop_after_two(done: int, total: int, seconds: float) -> bool:
        seen.append((done, total))
        return done >= 2

    stopped = dataset_runs.run_dataset(spec, model, progress=stop_after_two)
    assert seen == [(1, 4), (2, 4)]
    assert (stopped.done, stopped.total, stopped.stopped, stopped.complete) == (2, 4, True, False)
    assert "Stopped after 2 of 4" in stopped.status()
    assert stopped.table().num_images == 2

    reopened = dataset_runs.load_run(spec)
    assert reopened is not None and reopened.done == 2 and reopened.stopped

    resumed = dataset_runs.run_dataset(spec, model, progress=lambda d, t, s: seen.append((d, t)))
    assert seen[2:] == [(3, 4), (4, 4)]  # the two stored images are not run again
    assert resumed.complete and not resumed.stopped and resumed.status().startswith("Complete")

    direct = sweep(
        model, SynthScapes("val", 4, SIZE), spec.cascades, spec.sweep_methods, progress=False
    )
    table = resumed.table()
    assert [(r.cascade, r.method) for r in table.rows] == [
        (r.cascade, r.method) for r in direct.rows
    ]
    for ours, theirs in zip(table.rows, direct.rows):
        assert ours.miou == pytest.approx(theirs.miou, abs=1e-12)
        assert ours.per_class_iou == pytest.approx(theirs.per_class_iou, abs=1e-12)
        assert ours.gflops == pytest.approx(theirs.gflops)


def test_the_flip_axis_stores_rows_with_and_without_flip_as_the_sweep_makes_them(model, results):
    source = DataSource("synthscapes", count=2, size=SIZE)
    cascades = [(0.5,), (0.5, 1.0)]
    spec = dataset_runs.make_spec("hmsa-lite", "weights-v1", source, cascades, METHODS, True)
    assert (
        spec.key()
        != dataset_runs.make_spec("hmsa-lite", "weights-v1", source, cascades, METHODS).key()
    )
    dataset_runs.run_dataset(spec, model)
    stored = dataset_runs.load_run(spec)  # from disk, as a new process reads it
    assert stored is not None and stored.spec.flip and stored.complete
    direct = sweep(
        model, SynthScapes("val", 2, SIZE), spec.cascades, spec.sweep_methods, progress=False,
        flips=(False, True),
    )  # fmt: skip
    table = stored.table()
    assert [(r.cascade, r.method, r.flip) for r in table.rows] == [
        (r.cascade, r.method, r.flip) for r in direct.rows
    ]
    assert {r.flip for r in table.rows} == {False, True}
    for ours, theirs in zip(table.rows, direct.rows):
        assert ours.miou == pytest.approx(theirs.miou, abs=1e-12)
        assert ours.gflops == pytest.approx(theirs.gflops)
    plain = table.row((0.5, 1.0), "hierarchical")
    assert table.row((0.5, 1.0), "hierarchical", flip=True).gflops == pytest.approx(
        2 * plain.gflops
    )
    headers, _ = dataset_runs.per_class_iou_frame_rows(stored.shown_table())
    assert "single 0.5 + flip" in headers and "hierarchical + flip (0.5, 1)" in headers
    assert len(headers) == len(set(headers))


def test_settings_name_the_stored_run(model, results):
    base = _spec(2)
    assert base.key() == _spec(2).key()
    others = [
        _spec(3),
        _spec(2, methods=["hierarchical"]),
        dataset_runs.make_spec("hmsa-lite", "weights-v2", base.data, CASCADES, METHODS),
        dataset_runs.make_spec("hmsa-lite", "weights-v1", base.data, [(0.5, 1.0)], METHODS),
        _spec(data=DataSource("synthscapes", count=2, size=(128, 256))),
    ]
    assert len({base.key(), *(s.key() for s in others)}) == 1 + len(others)
    dataset_runs.run_dataset(base, model)
    assert dataset_runs.load_run(base).complete
    assert all(dataset_runs.load_run(s) is None for s in others)


def test_ranking_is_the_merge_gain_over_the_best_single_scale_of_each_image(model, results):
    spec = _spec(3)
    run = dataset_runs.run_dataset(spec, model)
    ranking = run.ranking()
    assert run.ranking_key() == ((0.5, 1.0, 2.0), "hierarchical")
    assert sorted(g.index for g in ranking) == [0, 1, 2]
    assert [g.gain for g in ranking] == sorted((g.gain for g in ranking), reverse=True)
    data = SynthScapes("val", 3, SIZE)
    for gain in ranking:
        sample = data[gain.index]
        result = hmsa_core.infer(sample.image, (0.5, 1.0, 2.0), model=model, cache=None)
        singles = {
            s: score_prediction(result.remerge(f"single:{s:g}").pred, sample.mask, 19).miou
            for s in (0.5, 1.0, 2.0)
        }
        merged = score_prediction(result.pred, sample.mask, 19).miou
        best = max(singles, key=lambda s: singles[s])
        assert gain.best_single_scale == best
        assert gain.merged_miou == pytest.approx(merged, abs=1e-6)
        assert gain.gain == pytest.approx(merged - singles[best], abs=1e-6)
        assert Image.open(gain.thumbnail).size[0] <= dataset_runs.THUMB_SIDE
        assert dataset_runs.thumbnail_uri(gain.thumbnail).startswith("data:image/png;base64,")


def test_scale_preference_sums_the_effective_weights_over_ground_truth_pixels(model, results):
    from analysis.scale_stats import dataset_scale_preference

    run = dataset_runs.run_dataset(_spec(2), model)
    pref = run.preference()
    expected = dataset_scale_preference(model, SynthScapes("val", 2, SIZE), (0.5, 1.0, 2.0))
    assert pref is not None and pref.scales == (0.5, 1.0, 2.0)
    assert pref.class_ids == expected.class_ids
    np.testing.assert_allclose(pref.weights, expected.weights, atol=1e-5)
    np.testing.assert_array_equal(pref.pixels, expected.pixels)


def test_single_rows_added_for_the_ranking_are_not_shown_unless_asked(model, results):
    run = dataset_runs.run_dataset(_spec(1), model)
    assert any(r.method.startswith("single:") for r in run.table().rows)
    assert not any(r.method.startswith("single:") for r in run.shown_table().rows)
    asked = dataset_runs.run_dataset(_spec(1, methods=["hierarchical", "single"]), model)
    assert any(r.method.startswith("single:") for r in asked.shown_table().rows)


def test_folder_source_pairs_masks_and_skips_unlabelled_images(model, results, tmp_path):
    folder = tmp_path / "street"
    (folder / "masks").mkdir(parents=True)
    for i in range(3):
        scene = generate_scene(40 + i, size=SIZE)
        Image.fromarray(scene.image).save(folder / f"img{i}.png")
        if i != 1:  # img1 has no mask
            Image.fromarray(scene.mask.astype(np.uint8)).save(folder / "masks" / f"img{i}.png")
    source = DataSource("folder", str(folder), count=0, max_side=64)
    spec = _spec(data=source)
    run = dataset_runs.run_dataset(spec, model)
    assert run.complete and [r.index for r in run.records] == [0, 2]
    assert [r.name for r in run.records] == ["img0", "img2"]
    assert run.table().num_images == 2
    before = spec.key()
    (folder / "masks" / "img2.png").unlink()
    assert _spec(data=source).key() != before  # editing the folder names another run


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (DataSource("folder", ""), "give the folder"),
        (DataSource("folder", "/no/such/folder"), "not a folder"),
        (DataSource("cityscapes", "/"), "not a Cityscapes folder"),
        (DataSource("synthscapes", count=0), "at least one"),
    ],
)
def test_bad_data_sources_say_what_to_fix(model, results, source, message):
    with pytest.raises(ValueError, match=message):
        dataset_runs.run_dataset(_spec(data=source), model)


def test_damaged_files_are_refused_or_skipped_never_unpickled(model, results):
    spec = _spec(2)
    run = dataset_runs.run_dataset(spec, model)
    records = sorted((run.folder / "images").glob("*.npz"))
    records[0].write_bytes(b"\x80\x04not an npz")  # a pickle-looking file is never loaded
    reopened = dataset_runs.load_run(spec)
    assert reopened is not None and [r.index for r in reopened.records] == [1]
    (run.folder / "run.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(ValueError, match="unreadable"):
        dataset_runs.load_run(spec)


def test_command_line_sweep_csv_loads_into_the_same_table(model, results, tmp_path):
    run = dataset_runs.run_dataset(_spec(2), model)
    written = run.table().to_csv(tmp_path / "sweep.csv")
    loaded = dataset_runs.load_sweep_csv(written.read_bytes())
    assert isinstance(loaded, SweepTable) and loaded.num_images == 2
    assert loaded.labels.names == model.labels.names
    for ours, theirs in zip(loaded.rows, run.table().rows):
        assert (ours.cascade, ours.method) == (theirs.cascade, theirs.method)
        assert ours.miou == pytest.approx(theirs.miou) or math.isnan(theirs.miou)
    headers, rows = dataset_runs.per_class_iou_frame_rows(loaded)
    assert headers[0] == "class" and len(headers) == 1 + sum(r.available for r in loaded.rows)
    assert {row[0] for row in rows} <= set(model.labels.names)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe\x00binary", "not a sweep CSV"),
        (b"a,b,c\n1,2,3\n", "missing column"),
        (b"cascade,method,miou,pixel_acc,gflops,seconds,images,reference,note\n", "per-class"),
        (
            b"cascade,method,miou,pixel_acc,gflops,seconds,images,reference,note,iou_road\n"
            b"0.5,mean,zero,,1,1,1,ground truth,,0.5\n",
            "unreadable",
        ),
        (b"x" * (dataset_runs.MAX_CSV_BYTES + 1), "refused"),
    ],
)
def test_hostile_csvs_are_refused_with_a_reason(raw, message):
    with pytest.raises(ValueError, match=message):
        dataset_runs.load_sweep_csv(raw)


def test_background_job_reports_progress_and_stops_on_request(model, results):
    spec = _spec(30, methods=["hierarchical"])
    job = start_job(spec, model)
    assert start_job(spec, model) is job  # one job per settings
    job.stop()
    assert job.wait(timeout=120)
    assert job.progress.finished and not job.progress.error
    run = dataset_runs.load_run(spec)
    assert run is not None and run.stopped and 1 <= run.done < 30
    assert job.progress.done == run.done and job.progress.total == 30
