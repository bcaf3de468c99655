"""Results show themselves in a notebook: a one-line repr, a small JS-free HTML display with
inline PNG thumbnails and the cost table, and the analysis figures through ``result.figure``."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

import hmsa_core
from hmsa_core.display import FIGURE_GROUP, figure_kinds, thumb_side_for
from hmsa_core.merge import merge
from hmsa_core.models.registry import build

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"
SAMPLE = SAMPLES / "synthscapes_val_001.png"
MASK = SAMPLES / "synthscapes_val_001_mask.png"
SIZE_BOUND = 300 * 1024
COST_COLUMNS = ("scale", "input size", "GFLOPs", "seconds", "cached", "precision")


def _images(page: str) -> list[tuple[str, Image.Image]]:
    """Returns (title, decoded PNG) of every inline image of an HTML display."""
    found = []
    for uri, title in re.findall(
        r'<img src="data:image/png;base64,([^"]+)"[^>]*title="([^"]*)"', page
    ):
        found.append((title, Image.open(io.BytesIO(base64.b64decode(uri)))))
    return found


def _check_display(result: hmsa_core.InferenceResult) -> str:
    page = result._repr_html_()
    assert "<script" not in page.lower()
    images = _images(page)
    n = len(result.per_scale)
    with_attention = sum(r.attention is not None for r in result.per_scale.values())
    # overlay and merged confidence, then per scale: prediction, confidence, attention, weight
    assert len(images) == 2 + 2 * n + with_attention + (n if result.weights else 0)
    for title, img in images:
        img.load()  # a real, complete PNG
        assert max(img.size) <= 512, title
    for column in COST_COLUMNS:
        assert f"<th>{column}</th>" in page
    text = repr(result)
    assert "\n" not in text and text.startswith("InferenceResult(") and len(text) < 250
    return page


@pytest.fixture(scope="module")
def small_result() -> hmsa_core.InferenceResult:
    return hmsa_core.infer(SAMPLE, (0.5, 1.0), cache=None)


def test_the_display_shows_overlay_every_scale_and_the_cost(small_result) -> None:
    page = _check_display(small_result)
    titles = [t for t, _ in _images(page)]
    assert titles[0] == "prediction over the input"
    for s in ("0.5", "1"):
        assert {f"{s} prediction", f"{s} attention", f"{s} effective weight"} <= set(titles)
        assert f"{s} confidence" in titles
    assert "merged confidence" in titles
    for c in small_result.cost.per_scale:  # one cost row per scale, with its precision
        h, w = c.input_size
        assert f"<td>{c.scale:g}</td><td>{w} x {h}</td>" in page
        assert f"<td>{c.precision}</td>" in page
    for k in torch.unique(small_result.pred).tolist():  # a legend entry per class present
        assert small_result.labels.names[k] in page


def test_thumbnails_show_what_the_result_holds(small_result) -> None:
    images = dict(_images(small_result._repr_html_()))
    pred = np.asarray(images["1 prediction"].convert("RGB"))
    # The 1.0 thumbnail is its prediction at thumbnail size: its colours are label colours.
    palette = {tuple(c) for c in small_result.labels.colors}
    assert {tuple(c) for c in pred.reshape(-1, 3)} <= palette
    weight = np.asarray(images["0.5 effective weight"].convert("L"), dtype=np.float64)
    other = np.asarray(images["1 effective weight"].convert("L"), dtype=np.float64)
    assert weight.std() > 1 and not np.array_equal(weight, other)


def test_text_in_the_display_is_escaped(small_result) -> None:
    page = replace(small_result, model_name="<b>evil</b>")._repr_html_()
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page


def test_models_without_attention_or_without_weights_say_so(small_result) -> None:
    explicit = hmsa_core.load_model("explicit-lite")
    result = hmsa_core.infer(SAMPLE, (0.5, 1.0, 2.0), model=explicit, method="explicit", cache=None)
    assert "no attention head" in _check_display(result)
    bare = hmsa_core.infer(SAMPLE, (0.5, 1.0), return_attn=False, cache=None)
    assert "no weights (return_attn=False)" in _check_display(bare)


@pytest.mark.slow
def test_the_official_architecture_displays_too() -> None:
    torch.manual_seed(0)
    model = build("hrnet48_ocr_mscale", num_classes=19).eval()
    image = np.asarray(Image.open(SAMPLE).convert("RGB").resize((128, 64)))
    result = hmsa_core.infer(image, (0.5, 1.0), model=model, cache=None, aux=True)
    assert result.aux_logits is not None
    _check_display(result)


def test_cost_and_merge_results_have_a_line_and_a_table(small_result) -> None:
    cost = small_result.cost
    assert "\n" not in repr(cost) and repr(cost).startswith("CascadeCost(scales=(0.5, 1)")
    page = cost._repr_html_()
    assert all(f"<th>{c}</th>" in page for c in COST_COLUMNS)
    estimate = hmsa_core.estimate_cascade(hmsa_core.default_model(), (1024, 2048), (0.5, 1.0, 2.0))
    assert "2048 x 1024" in estimate._repr_html_()
    merged = merge(small_result.per_scale, "mean")
    assert repr(merged) == (
        "MergeResult(method='mean', scales=(0.5, 1), batch=1, classes=19, size=1024x512, aux=False)"
    )
    assert merged._repr_html_().count("<td>0.500</td>") == 2  # mean: each scale weighs 1/2


def test_more_scales_get_smaller_thumbnails() -> None:
    assert thumb_side_for(1) == thumb_side_for(4) > thumb_side_for(8) >= 64


@pytest.mark.parametrize("kind", ["overlay", "scales", "methods", "cost", "pareto"])
def test_result_figure_returns_the_analysis_figures(small_result, kind: str) -> None:
    assert kind in figure_kinds()
    assert isinstance(small_result.figure(kind), go.Figure)


def test_result_figure_passes_options_and_explains_refusals(small_result) -> None:
    assert set(figure_kinds()) == {"overlay", "scales", "methods", "iou", "cost", "pareto"}
    fig = small_result.figure("iou", gt=MASK, methods=("hierarchical", "mean"))
    assert {t.name.split(" ")[0] for t in fig.data} == {"hierarchical", "mean"}
    with pytest.raises(ValueError, match="needs ground truth"):
        small_result.figure("iou")
    with pytest.raises(ValueError, match="unknown figure kind 'bars'; use one of cost, iou"):
        small_result.figure("bars")


def test_figures_are_found_through_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    targets = {ep.name: ep.value for ep in entry_points(group=FIGURE_GROUP)}
    assert all(v.startswith("analysis.result_figures:") for v in targets.values())


@pytest.mark.slow
def test_full_size_displays_stay_under_300_kb() -> None:
    """1024 x 2048 results of both bundled models and every cascade shape from one to four
    scales (subsets re-merged from one set of passes) stay under the bound."""
    image = np.asarray(Image.open(SAMPLE).convert("RGB").resize((2048, 1024)))
    full = hmsa_core.infer(image, (0.25, 0.5, 1.0, 2.0), cache=None)
    sizes = {}
    for cascade in [(1.0,), (0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0)]:
        for method in ("hierarchical", "mean"):
            result = full.remerge(method, cascade)
            sizes[(cascade, method)] = len(_check_display(result).encode())
    explicit = hmsa_core.load_model("explicit-lite")
    result = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=explicit, method="explicit", cache=None)
    sizes[("explicit", "explicit")] = len(_check_display(result).encode())
    assert max(sizes.values()) < SIZE_BOUND, sizes


def test_without_figure_plugins_the_error_says_how_to_install(small_result, monkeypatch) -> None:
    import hmsa_core.display as display

    monkeypatch.setattr(display, "FIGURE_GROUP", "hmsa_core.figures_nobody_registers")
    with pytest.raises(ValueError, match=r"no figure builders are installed.*pip install -e \."):
        small_result.figure("cost")
    assert display.figure_kinds() == ()


def test_a_gated_cost_shows_the_share_computed() -> None:
    from hmsa_core.cost import CascadeCost, ScaleCost

    full = ScaleCost(0.5, (64, 128), 2 * 10**9, 0.1, 1 << 20)
    gated = ScaleCost(
        1.0, (128, 256), 3 * 10**9, 0.2, 1 << 20, computed_fraction=0.4, flops_saved=5 * 10**9
    )
    page = CascadeCost((full, gated))._repr_html_()
    assert "<th>computed</th>" in page and "<td>100%</td>" in page and "<td>40%</td>" in page
    assert "5.00 GFLOPs saved" in page
    assert "<th>computed</th>" not in CascadeCost((full,))._repr_html_()
