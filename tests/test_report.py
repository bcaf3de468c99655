"""The HTML report: one self-contained offline file that renders every figure in a browser."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

import hmsa_core
from analysis.compare import compare_methods
from analysis.report import build_report, count_figures, main, report_html_bytes
from analysis.scale_stats import scale_preference
from analysis.sweep import SweepTable, subset_rows
from hmsa_core.checkpoints.native import save_native
from hmsa_core.labels import CITYSCAPES
from tests.browser import CHROMIUM_ARGS, chromium_or_skip, playwright_or_skip

SIZE = (64, 96)
#: Figures of the where section with a mask and no camera distances: size recall, diameter
#: recall, trimap mIoU and accuracy, Boundary IoU, reliability, accuracy vs confidence, weight
#: by size, weight by boundary distance, and the confidence maps.
WHERE_FIGURES = 10


@pytest.fixture(scope="module")
def files(tmp_path_factory, model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (8, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    mask = np.kron(rng.integers(0, 19, (8, 12)), np.ones((8, 8))).astype(np.uint8)
    mask[:3] = 255
    Image.fromarray(image).save(root / "scene.png")
    Image.fromarray(mask, mode="L").save(root / "scene_mask.png")
    save_native(model, root / "lite.safetensors")
    return {
        "image": root / "scene.png",
        "mask": root / "scene_mask.png",
        "model": root / "lite.safetensors",
        "root": root,
    }


def _assert_self_contained(page: str) -> None:
    assert get_plotlyjs()[:2000] in page  # plotly.js embedded
    assert page.count(get_plotlyjs()[:2000]) == 1  # and only once
    assert not re.search(r"<script[^>]+src\s*=\s*[\"']?https?:", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]+href\s*=\s*[\"']?https?:", page, re.IGNORECASE)


def test_report_of_a_run_with_ground_truth_holds_every_section(model, files) -> None:
    result = hmsa_core.infer(files["image"], (0.5, 1.0, 2.0), model=model, cache=None)
    gt = np.asarray(Image.open(files["mask"])).astype(np.int64)
    comparison = compare_methods(
        result, ["hierarchical", "mean", "max", "single", "explicit"], gt=gt, model=model
    )
    sweep = subset_rows(result, ["hierarchical", "mean"], gt=gt)
    page = build_report(result, comparison, sweep, scale_preference(result, gt))
    _assert_self_contained(page)
    # overlay, grid, methods, IoU bars, cost, Pareto, scale preference
    assert count_figures(page) == 7
    for text in (
        "Per-scale outputs",
        "Merge methods",
        "skipped method",
        "Compute cost",
        "Pareto",
        "w@0.5 (%)",
    ):
        assert text in page
    assert (
        report_html_bytes(result).decode("utf-8").count('class="plotly-graph-div"') == 3
    )  # overlay, grid, cost


def test_where_section_holds_its_figures_tables_and_confidence_maps(model, files) -> None:
    from analysis.where_scales import analyse_where

    result = hmsa_core.infer(files["image"], (0.5, 1.0), model=model, cache=None)
    gt = np.asarray(Image.open(files["mask"])).astype(np.int64)
    where = analyse_where(result, gt)
    page = build_report(result, where=where)
    _assert_self_contained(page)
    assert count_figures(page) == 3 + WHERE_FIGURES  # overlay, grid, cost + the section
    section = page[page.index("Where each scale wins") :]
    assert "<th>method</th>" in section and "single:0.5" in section
    assert "top probability" in section  # the confidence maps
    assert f"{100 * where.calibration.ece('mean'):.1f}" in section  # the ECE table's number
    assert "Where each scale wins" not in build_report(result)  # no mask, no section


def test_markdown_tables_become_escaped_html() -> None:
    from analysis.report import markdown_html

    text = "**Sizes** of `x`.\n\n| a | b <i> |\n|---|---:|\n| <script> | 1.0 |\n\nend"
    assert markdown_html(text) == (
        "<p><strong>Sizes</strong> of <code>x</code>.</p>\n"
        "<table><thead><tr><th>a</th><th>b &lt;i&gt;</th></tr></thead>"
        "<tbody><tr><td>&lt;script&gt;</td><td>1.0</td></tr></tbody></table>\n<p>end</p>"
    )


def test_command_line_writes_image_and_sweep_reports(model, files, tmp_path) -> None:
    out = tmp_path / "run.html"
    code = main(
        ["--image", str(files["image"]), "--mask", str(files["mask"]), "--scales", "0.5,1",
         "--model", str(files["model"]), "--methods", "hierarchical,mean,single", "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and out.is_file()
    page = out.read_text(encoding="utf-8")
    _assert_self_contained(page)
    assert count_figures(page) == 7 + WHERE_FIGURES  # with --mask: the where section too
    assert "Where each scale wins" in page and "Boundary IoU" in page

    result = hmsa_core.infer(files["image"], (0.5, 1.0), model=model, cache=None)
    csv_path = subset_rows(result, ["hierarchical", "max"]).to_csv(tmp_path / "results.csv")
    assert SweepTable.from_csv(csv_path, CITYSCAPES).rows
    sweep_out = tmp_path / "sweep.html"
    assert main(["--sweep", str(csv_path), "--out", str(sweep_out)]) == 0
    sweep_page = sweep_out.read_text(encoding="utf-8")
    _assert_self_contained(sweep_page)
    assert count_figures(sweep_page) == 1 and "agreement" in sweep_page


def test_command_line_refuses_bad_input(files, tmp_path, capsys) -> None:
    assert main(["--out", str(tmp_path / "x.html")]) == 2
    bad_mask = tmp_path / "small_mask.png"
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(bad_mask)
    code = main(["--image", str(files["image"]), "--mask", str(bad_mask), "--model", str(files["model"]), "--out", str(tmp_path / "y.html")])  # fmt: skip
    assert code == 2
    assert "mask is 10 x 10 but the image is 96 x 64" in capsys.readouterr().err
    assert not (tmp_path / "y.html").exists()
    with pytest.raises(ValueError):
        build_report(None)


@pytest.mark.slow
def test_report_renders_every_figure_in_headless_chromium(model, files, tmp_path) -> None:
    playwright = playwright_or_skip()  # without a browser: skip, or fail when
    chromium = chromium_or_skip()  # HMSA_REQUIRE_BROWSER=1 (see tests/browser.py)
    out = tmp_path / "report.html"
    assert main(["--image", str(files["image"]), "--mask", str(files["mask"]), "--scales", "0.5,1,2", "--model", str(files["model"]), "--out", str(out)]) == 0  # fmt: skip
    expected = count_figures(out.read_text(encoding="utf-8"))
    assert expected == 7 + WHERE_FIGURES
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda req: requests.append(req.url))
            page.goto(out.as_uri())
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot').length >= {expected}", timeout=30_000
            )
            assert page.locator(".js-plotly-plot").count() == expected
            # every figure drew its main SVG layer
            assert page.locator(".js-plotly-plot .main-svg").count() >= expected
            # the overlay's hover shows a class name and per-scale probabilities
            box = page.locator("#figure-1 .nsewdrag").first.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_selector("#figure-1 .hovertext", timeout=5_000)
            hover = page.locator("#figure-1 .hovertext").first.text_content() or ""
            assert "scale 0.5: p" in hover and "scale 2: p" in hover
            assert any(name in hover for name in CITYSCAPES.names)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors
    assert all(url.startswith(("file:", "data:", "about:")) for url in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 0
