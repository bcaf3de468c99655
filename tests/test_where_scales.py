"""The where-analysis on hand-built per-scale outputs with known answers, streaming over images,
bad input, figures, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core
from analysis.where_figures import size_figure, where_figures
from analysis.where_scales import (
    WhereAccumulator,
    WhereReport,
    WhereSettings,
    analyse_merge,
    analyse_outputs,
    analyse_where,
)
from hmsa_core.labels import generic_label_set
from hmsa_core.models.base import ScaleOutput

LABELS = generic_label_set(4)
SMALL = [(2, 2), (2, 10), (30, 4), (36, 20)]  # corners of the 2 x 2 small objects (class 3)


def _mask() -> np.ndarray:
    """40 x 80: background 0, a large block of class 1, a medium 8 x 8 block of class 2 and four
    small 2 x 2 objects of class 3."""
    mask = np.zeros((40, 80), dtype=np.int64)
    mask[5:35, 40:75] = 1
    mask[20:28, 10:18] = 2
    for r, c in SMALL:
        mask[r : r + 2, c : c + 2] = 3
    return mask


def _onehot(mask: np.ndarray, up: int = 1) -> torch.Tensor:
    logits = 100.0 * np.eye(4, dtype=np.float32)[mask].transpose(2, 0, 1)
    return torch.from_numpy(np.kron(logits, np.ones((up, up), np.float32)))[None]


def _outputs(mask: np.ndarray) -> dict[float, ScaleOutput]:
    """Scale 1 misses exactly the small objects; scale 2 is right everywhere; attention 0.25 at
    scale 1, so HMSA gives scale 2 a weight of 0.75 everywhere."""
    blind = np.where(mask == 3, 0, mask)
    attention = torch.full((1, 1, *mask.shape), 0.25)
    return {
        1.0: ScaleOutput(_onehot(blind) / 10, attention),
        2.0: ScaleOutput(_onehot(mask, 2), torch.full((1, 1, 80, 160), 0.5)),
    }


def _report(mask: np.ndarray | None = None, **kw: object) -> WhereReport:
    mask = _mask() if mask is None else mask
    return analyse_outputs(_outputs(mask), mask.shape, mask, LABELS, **kw)  # type: ignore[arg-type]


def test_object_recall_of_a_prediction_missing_exactly_the_small_objects() -> None:
    report = _report()
    size = report.size.by_size
    assert report.methods == ("hierarchical", "mean", "max", "single:1", "single:2")
    assert report.object_source == "components"
    assert size.objects.tolist() == [4, 1, 2]  # the background is one large object
    assert size.recall("single:1").tolist() == [0.0, 1.0, 1.0]
    assert size.accuracy("single:1")[0] == 0.0
    assert size.recall("single:2").tolist() == [1.0, 1.0, 1.0]
    assert size.recall("hierarchical").tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(size.mean_weight("hierarchical"), [[0.25, 0.75]] * 3)
    assert size.miou("single:2").tolist() == [1.0, 1.0, 1.0]


def test_a_perfectly_confident_correct_prediction_has_zero_ece() -> None:
    report = _report()
    assert report.calibration.ece("single:2") == 0.0
    assert report.calibration.ece("single:1") > 0.0  # confidently wrong on the small objects


def test_trimap_and_boundary_iou_of_the_exact_scale() -> None:
    report = _report()
    b = report.boundary
    assert b.miou("single:2").tolist() == [1.0] * 7
    assert b.mean_boundary_iou("single:2") == 1.0
    assert b.accuracy("single:1")[0] < 1.0  # the small objects are all boundary
    assert b.pixels()[0] > 0 and b.pixels()[-1] == 40 * 80


def test_streaming_equals_one_shot_and_accumulators_merge() -> None:
    a, b = _mask(), _mask()[:, ::-1].copy()
    one = _report(a)
    one.add(_report(b))
    acc = WhereAccumulator(LABELS, (1.0, 2.0))
    first = acc.add_outputs(_outputs(a), a.shape, a, name="a")
    acc.add_outputs(_outputs(b), b.shape, b, name="b")
    assert acc.report().to_dict() == one.to_dict()
    assert acc.report().num_images == 2
    assert first.small_objects == 4 and first.gain == 0.0 and first.best_single == "single:2"
    left, right = WhereAccumulator(LABELS, (1.0, 2.0)), WhereAccumulator(LABELS, (1.0, 2.0))
    left.add_outputs(_outputs(a), a.shape, a)
    right.add_outputs(_outputs(b), b.shape, b)
    left.merge(right)
    assert left.report().to_dict() == one.to_dict() and len(left.images) == 2


def test_json_round_trip_and_markdown() -> None:
    report = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert WhereReport.from_dict(data).to_dict() == report.to_dict()
    assert data["summary"]["single:1"]["recall"]["small"] == 0.0
    assert data["summary"]["hierarchical"]["mean_weight"]["small"]["2"] == pytest.approx(0.75)
    assert data["summary"]["single:2"]["trimap_miou"]["8"] == 1.0
    text = report.to_markdown()
    assert "small (n=4, too few)" in text and "ECE" in text


def test_sub_cascade_methods_and_unknown_scales() -> None:
    report = _report(methods=["hierarchical@1,2", "single:2"])
    assert report.methods == ("hierarchical@1,2", "single:2")
    assert report.size.by_size.recall("hierarchical@1,2").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="not computed"):
        _report(methods=["mean@0.5,1"])


def test_bad_input_is_a_clear_error_or_an_explicit_empty_report() -> None:
    mask = _mask()
    with pytest.raises(ValueError, match="mask is 80 x 30 but the image is 80 x 40"):
        analyse_outputs(_outputs(mask), mask.shape, mask[:30], LABELS)
    bad = mask.copy()
    bad[0, 0] = 9
    with pytest.raises(ValueError, match=r"outside 0\.\.3.*9"):
        analyse_outputs(_outputs(mask), mask.shape, bad, LABELS)
    empty = analyse_outputs(_outputs(mask), mask.shape, np.full_like(mask, 255), LABELS)
    assert "all ignore" in " ".join(empty.notes)
    assert empty.size.by_size.objects.tolist() == [0, 0, 0]
    assert np.isnan(empty.size.by_size.recall("hierarchical")).all()
    assert np.isnan(empty.calibration.ece("hierarchical"))
    assert "n=0, empty" in size_figure(empty).to_json()
    empty.to_markdown()
    inst = np.zeros(mask.shape, np.int32)
    inst[0:30, 35:45] = 4  # spans background and the large block
    noted = _report(instances=inst, distances={4: 20.0})
    assert noted.object_source == "instances+components"
    assert any("several classes" in n for n in noted.notes)
    assert noted.size.by_distance is not None and noted.size.by_distance.objects.sum() == 2


def test_a_model_without_attention_leaves_hierarchical_out_and_scores_the_rest() -> None:
    mask = _mask()
    outs = {s: ScaleOutput(o.logits) for s, o in _outputs(mask).items()}
    report = analyse_outputs(outs, mask.shape, mask, LABELS)
    assert any(n.startswith("hierarchical left out: ") for n in report.notes)
    assert report.methods == ("mean", "max", "single:1", "single:2")
    assert report.weight_methods == ("max",)
    where_figures(report)
    assert report.size.by_size.recall("single:2").tolist() == [1.0, 1.0, 1.0]


def test_figures_mark_bins_with_too_few_objects() -> None:
    figs = where_figures(_report(settings=WhereSettings(min_objects=3)))
    assert {"size_recall", "trimap_miou", "boundary_iou", "reliability", "weight_by_size",
            "weight_by_boundary"} <= set(figs)  # fmt: skip
    bars = figs["size_recall"].data[0]
    assert list(bars.marker.pattern.shape) == ["", "/", "/"]
    assert list(bars.text) == ["", "n=1, too few", "n=2, too few"]
    assert "objects" in bars.hovertemplate


def test_analyse_where_on_a_real_result_needs_no_forward_pass() -> None:
    from tests.tiny_models import tiny_official

    model = tiny_official(classes=4)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    mask = np.kron(rng.integers(0, 4, (4, 6)), np.ones((16, 16), int))
    result = hmsa_core.infer(image, (0.5, 1.0), model=model, cache=None)
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    report = analyse_where(result, mask)
    handle.remove()
    assert not calls
    assert report.methods == ("hierarchical", "mean", "max", "single:0.5", "single:1")
    pred = result.pred.numpy()
    want = (pred == mask).mean()
    total = report.size.by_size
    assert total.correct["hierarchical"].sum() / total.pixels.sum() == pytest.approx(want)
    merged = hmsa_core.merge({s: r.output for s, r in result.per_scale.items()}, "mean",
                             output_size=result.size)  # fmt: skip
    alone = analyse_merge(merged, mask, result.labels)
    assert alone.methods == ("mean",)
    assert alone.to_dict()["summary"]["mean"] == report.to_dict()["summary"]["mean"]


def _write_folder(root: Path) -> None:
    from hmsa_core.data.synthscapes import write_samples

    write_samples(root, count=2, size=(64, 128), colors=0)
    (root / "masks").mkdir()
    for p in root.glob("*_mask.png"):
        p.rename(root / "masks" / p.name.replace("_mask", ""))


def test_command_line_writes_every_number_as_json(tmp_path: Path, capsys) -> None:
    from analysis.cli import main

    _write_folder(tmp_path / "data")
    out = tmp_path / "size.json"
    common = ["--data", str(tmp_path / "data"), "--scales", "0.5,1", "--no-progress"]
    assert main(["scale-stats", "--by", "size", *common, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Objects by size" in text and "single:0.5" in text
    data = json.loads(out.read_text())
    assert data["by"] == "size" and data["num_images"] == 2 and len(data["images"]) == 2
    assert set(data["summary"]) == {"hierarchical", "mean", "max", "single:0.5", "single:1"}
    assert data["object_source"] == "components"
    assert main(["calibration", *common]) == 0
    assert "ECE" in capsys.readouterr().out
    assert main(["scale-stats", "--by", "distance", *common]) == 2
    assert "no camera distances" in capsys.readouterr().err


def test_a_result_with_flips_is_scored_with_its_flips() -> None:
    from hmsa_core.data.synthscapes import generate_scene

    scene = generate_scene(1, size=(64, 128), split="val")
    result = hmsa_core.infer(scene.image, (0.5, 1.0), cache=None, flip=True)
    report = analyse_where(result, scene.mask, methods=["mean", "single:1"])
    size = report.size.by_size
    for method, kind in (("mean", "mean"), ("single:1", "single:1")):
        want = (result.remerge(kind).pred.numpy() == scene.mask).mean()
        assert size.correct[method].sum() / size.pixels.sum() == pytest.approx(want)
