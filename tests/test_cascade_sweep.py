"""The cascade sweep: every cascade x method from one pass per scale, scored and tabulated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from analysis.cascades import all_subsets, expand_methods, parse_cascades
from analysis.metrics import ConfusionMatrix
from analysis.sweep import (
    REFERENCE_AGREEMENT,
    REFERENCE_GT,
    SweepTable,
    main,
    subset_rows,
    sweep,
)
from hmsa_core.checkpoints.native import save_native
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.labels import CITYSCAPES
from hmsa_core.merge import MergeResult
from hmsa_core.models.base import ScaleOutput
from hmsa_core.models.lite import LiteSegmenter

SIZE = (64, 128)


class PairExplicitLite(LiteSegmenter):
    """A lite model whose explicit merge exists only for its training scales (0.5, 1.0)."""

    def merge_explicit(
        self, per_scale: Mapping[float, ScaleOutput], output_size: tuple[int, int]
    ) -> MergeResult:
        scales = tuple(sorted(per_scale))
        if scales != (0.5, 1.0):
            raise ValueError(f"explicit attention was trained on (0.5, 1), not {scales}")
        return hmsa_core.merge(per_scale, "mean", output_size=output_size)


def _varied(model: LiteSegmenter, seed: int = 0) -> LiteSegmenter:
    """Returns ``model`` with a classifier whose random init predicts many classes."""
    torch.manual_seed(seed)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
        model.classifier.bias.zero_()
    return model.eval()


def _samples(n: int = 3, seed: int = 0) -> list[SegmentationSample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        image = np.kron(rng.integers(0, 256, (8, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        mask = np.kron(rng.integers(0, 6, (4, 8)), np.ones((16, 16))).astype(np.int64)
        mask[:3] = 255
        samples.append(SegmentationSample(image=image, mask=mask, name=f"s{i}"))
    return samples


@pytest.fixture(scope="module")
def model() -> PairExplicitLite:
    torch.manual_seed(0)
    return _varied(PairExplicitLite(CITYSCAPES))


@pytest.fixture(scope="module")
def table(model: PairExplicitLite) -> SweepTable:
    return sweep(
        model,
        _samples(),
        [(1.0,), (0.5, 1.0), (0.5, 1.0, 2.0)],
        ["hierarchical", "mean", "max", "single", "explicit"],
        progress=False,
        precision="fp32",
    )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_all_subsets_lists_every_non_empty_subset_once_ascending() -> None:
    subsets = all_subsets([2.0, 0.5, 1.0, 0.25, 1.0])
    assert len(subsets) == 2**4 - 1 == len(set(subsets))
    assert all(list(s) == sorted(s) for s in subsets)
    assert subsets[0] == (0.25,) and subsets[-1] == (0.25, 0.5, 1.0, 2.0)
    assert all_subsets([1.0]) == [(1.0,)]
    assert all_subsets([]) == []


def test_cascade_parsing_and_method_expansion() -> None:
    assert parse_cascades("0.5,1; 1,0.5 ;0.25, 0.5,1,2;") == ((0.5, 1.0), (0.25, 0.5, 1.0, 2.0))
    assert expand_methods((0.5, 1.0), ["hierarchical", "single", "mean"]) == (
        "hierarchical", "single:0.5", "single:1", "mean",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no cascades"):
        parse_cascades(" ; ")
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_cascades("0.5,x")
    with pytest.raises(ValueError, match="must be greater than 0"):
        parse_cascades("0,1")


def test_every_cascade_and_method_has_a_row(table: SweepTable) -> None:
    keys = [(r.cascade, r.method) for r in table.rows]
    expected = [
        ((1.0,), "single:1")  # one scale: every merge is that scale's prediction, kept once
    ] + [
        ((0.5, 1.0), m)
        for m in ("hierarchical", "mean", "max", "single:0.5", "single:1", "explicit")
    ] + [
        ((0.5, 1.0, 2.0), m)
        for m in ("hierarchical", "mean", "max", "single:0.5", "single:1", "single:2", "explicit")
    ]  # fmt: skip
    assert keys == expected
    assert table.num_images == 3 and table.reference == REFERENCE_GT


def test_single_scale_row_equals_running_the_model_once(
    model: PairExplicitLite, table: SweepTable
) -> None:
    cm = ConfusionMatrix(19)
    for sample in _samples():
        x = hmsa_core.prepare_input(sample.image, model).tensor
        with torch.no_grad():
            cm.update(model(x).logits[0].argmax(0), sample.mask)
    scores = cm.scores()
    for row in (table.row((1.0,), "single:1"), table.row((0.5, 1.0, 2.0), "single:1")):
        assert row.miou == scores.miou and row.pixel_accuracy == scores.pixel_accuracy
        assert row.per_class_iou == {
            CITYSCAPES.names[c]: float(scores.iou[c]) for c in np.flatnonzero(scores.present)
        }
    # a lone scale merged any way is that scale
    assert table.row((1.0,), "hierarchical").miou == scores.miou == table.row((1.0,), "mean").miou
    assert len(table.row((1.0,), "single:1").per_class_iou) > 2  # the model predicts many classes


def test_hierarchical_row_matches_infer_on_each_image(
    model: PairExplicitLite, table: SweepTable
) -> None:
    cm = ConfusionMatrix(19)
    for sample in _samples():
        result = hmsa_core.infer(
            sample.image, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32"
        )
        cm.update(result.pred, sample.mask)
    assert table.row((0.5, 1.0, 2.0), "hierarchical").miou == cm.scores().miou
    assert table.row((0.5, 1.0, 2.0), "hierarchical").miou != table.row((0.5, 1.0, 2.0), "max").miou


def test_explicit_rows_are_na_outside_the_training_scales(table: SweepTable) -> None:
    trained = table.row((0.5, 1.0), "explicit")
    assert trained.available and trained.miou == table.row((0.5, 1.0), "mean").miou
    row = table.row((0.5, 1.0, 2.0), "explicit")
    assert not row.available and math.isnan(row.seconds) and row.per_class_iou == {}
    assert "trained on (0.5, 1)" in row.note
    # one scale has no explicit row of its own: any merge of it names its single row
    assert table.row((1.0,), "explicit") == table.row((1.0,), "single:1")
    markdown = table.to_markdown()
    assert markdown.count("| n/a | n/a |") == 1 and "n/a: explicit on (0.5, 1, 2)" in markdown


def test_costs_are_those_of_the_cascade_scales(model: PairExplicitLite, table: SweepTable) -> None:
    for cascade in [(1.0,), (0.5, 1.0), (0.5, 1.0, 2.0)]:
        expected = hmsa_core.estimate_cascade(model, SIZE, cascade).gflops
        for row in table.rows:
            if row.cascade == cascade:
                assert row.gflops == pytest.approx(expected, rel=1e-12)
                assert not row.available or row.seconds > 0
    assert table.row((0.5, 1.0, 2.0), "mean").gflops > table.row((0.5, 1.0), "mean").gflops


def test_csv_and_markdown_round_trip(table: SweepTable, tmp_path: Path) -> None:
    back = SweepTable.from_csv(table.to_csv(tmp_path / "sweep.csv"), CITYSCAPES)
    assert back.num_images == table.num_images and back.reference == table.reference
    assert len(back.rows) == len(table.rows)
    for a, b in zip(table.rows, back.rows):
        assert (a.cascade, a.method, a.per_class_iou, a.note) == (
            b.cascade,
            b.method,
            b.per_class_iou,
            b.note,
        )
        for field in ("miou", "pixel_accuracy", "gflops", "seconds"):
            assert _same(getattr(a, field), getattr(b, field)), field
    assert back.to_markdown(per_class=True) == table.to_markdown(per_class=True)
    lines = table.to_markdown().splitlines()
    assert sum(line.startswith("| 0.5, 1, 2 |") for line in lines) == 7
    (tmp_path / "bad.csv").write_text("cascade,method\n1,mean\n")
    with pytest.raises(ValueError, match="not a sweep CSV"):
        SweepTable.from_csv(tmp_path / "bad.csv", CITYSCAPES)


def test_subset_rows_cover_every_subset_and_agree_with_the_full_cascade(
    model: PairExplicitLite,
) -> None:
    sample = _samples(1, seed=3)[0]
    result = hmsa_core.infer(
        sample.image, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32"
    )
    agreement = subset_rows(result, ("hierarchical",))
    assert agreement.reference == REFERENCE_AGREEMENT and agreement.num_images == 1
    assert [r.cascade for r in agreement.rows] == all_subsets((0.5, 1.0, 2.0))
    full = agreement.row((0.5, 1.0, 2.0), "hierarchical")
    assert full.miou == 1.0 and full.pixel_accuracy == 1.0
    assert min(r.miou for r in agreement.rows) < 1.0
    assert full.gflops == pytest.approx(result.cost.gflops)

    scored = subset_rows(
        result, ("hierarchical", "single", "explicit"), gt=sample.mask, model=model
    )
    assert scored.reference == REFERENCE_GT
    # one row per one-scale subset; else hierarchical, one single per scale, explicit
    assert len(scored.rows) == 3 + 3 * 4 + 5
    assert [r.method for r in scored.rows if len(r.cascade) == 1] == [
        "single:0.5",
        "single:1",
        "single:2",
    ]
    cm = ConfusionMatrix(19)
    cm.update(result.pred, sample.mask)
    assert scored.row((0.5, 1.0, 2.0), "hierarchical").miou == cm.scores().miou
    assert [r.cascade for r in scored.rows if r.method == "explicit" and r.available] == [
        (0.5, 1.0)
    ]
    with pytest.raises(ValueError, match="ground truth is"):
        subset_rows(result, gt=sample.mask[:10])


def test_unlabelled_data_and_bad_methods_are_errors(model: PairExplicitLite) -> None:
    unlabelled = [SegmentationSample(s.image, None, s.name) for s in _samples(2)]
    with pytest.raises(ValueError, match="no labelled image"):
        sweep(model, unlabelled, [(1.0,)], ["mean"], progress=False)
    with pytest.raises(ValueError, match="unknown merge method 'median'"):
        sweep(model, _samples(1), [(1.0,)], ["median"], progress=False)


def test_command_line_writes_csv_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "data" / "masks").mkdir(parents=True)
    for sample in _samples(2):
        Image.fromarray(sample.image).save(tmp_path / "data" / f"{sample.name}.png")
        Image.fromarray(sample.mask.astype(np.uint8), mode="L").save(
            tmp_path / "data" / "masks" / f"{sample.name}.png"
        )
    torch.manual_seed(1)
    lite = _varied(hmsa_core.build("lite", num_classes=19))
    checkpoint = save_native(lite, tmp_path / "lite.safetensors")
    code = main([
        "--model", str(checkpoint), "--data", str(tmp_path / "data"), "--cascades", "0.5,1;1",
        "--methods", "hierarchical,single", "--limit", "1", "--out", str(tmp_path / "r.csv"),
        "--md", str(tmp_path / "r.md"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    table = SweepTable.from_csv(tmp_path / "r.csv", CITYSCAPES)
    assert table.num_images == 1 and len(table.rows) == 3 + 1  # (1,) once: single:1
    printed = capsys.readouterr().out
    assert (tmp_path / "r.md").read_text() in printed
    assert (
        main(["--model", str(checkpoint), "--data", str(tmp_path / "nowhere"), "--no-progress"])
        == 2
    )
    assert "no such folder" in capsys.readouterr().err
