"""The Gradio page in a real browser: Debian chromium driven by playwright.

Submitting without an image (the first visit's sample cleared) shows the error and the page
keeps working; a text file named ``.png`` uploaded through the real file input is refused by
the app's own reader with a clear message; clicking an example shows both previews and
submitting renders the per-scale gallery;
the page fetches nothing from outside 127.0.0.1 (it must work offline). Without chromium the
test is skipped, or fails when ``HMSA_REQUIRE_BROWSER=1`` (see tests/browser.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app import common
from app.gradio_app import build_app, launch
from tests.browser import (
    REQUIRE_ENV,
    chromium_or_skip,
    free_port,
    local_page,
    playwright_or_skip,
)


def small_samples(folder: Path) -> Path:
    """Returns a folder holding one small sample with its mask: the first bundled one shrunk
    to 256 px wide, or a SynthScapes scene written for the test."""
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    bundled = [s for s in common.list_samples() if s.mask_path is not None]
    if not bundled:
        from hmsa_core.data.synthscapes import write_samples

        write_samples(folder, count=1, size=(128, 256))
        return folder
    sample = bundled[0]
    with Image.open(sample.image_path) as img:
        w, h = img.size
        size = (256, max(16, round(h * 256 / w)))
        img.convert("RGB").resize(size, Image.Resampling.BILINEAR).save(folder / "sample.png")
    with Image.open(sample.mask_path) as mask:
        mask.resize(size, Image.Resampling.NEAREST).save(folder / "sample_mask.png")
    return folder


def test_a_missing_browser_skips_or_fails_as_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = str(tmp_path / "no-chromium")
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        chromium_or_skip(absent)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ENV}=1"):
        chromium_or_skip(absent)


@pytest.mark.slow
def test_example_submit_renders_the_scale_gallery(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    playwright_api = playwright_or_skip()
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is a text file, not a picture\n")
    demo = build_app(samples_dir=small_samples(tmp_path / "samples"))
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    outside: list[str] = []
    try:
        with local_page(playwright_api, chromium, outside) as page:
            page.goto(url)
            run = page.locator("#run")
            run.wait_for(timeout=30_000)
            page.locator("#image-preview img").first.wait_for(timeout=60_000)  # first visit
            page.locator("#scale-gallery img").first.wait_for(timeout=60_000)

            page.locator("#input-image button[aria-label=Clear]").click()
            run.click()  # no image: the error is shown, nothing breaks
            page.get_by_text("no image given").first.wait_for(timeout=20_000)

            page.locator("#input-image input[type=file]").set_input_files(str(not_an_image))
            page.get_by_text("notes.png is not a readable image").first.wait_for(timeout=20_000)
            assert page.locator("#image-preview img").count() == 0

            page.locator("#examples [data-testid=dataset-cell-0-0]").click()
            page.locator("#image-preview img").first.wait_for(timeout=20_000)
            page.locator("#mask-preview img").first.wait_for(timeout=20_000)
            run.click()
            gallery_images = page.locator("#scale-gallery img")
            gallery_images.first.wait_for(state="visible", timeout=45_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#scale-gallery img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length >= 9",
                timeout=20_000,
            )
            page.get_by_text("mIoU vs. the mask").first.wait_for(timeout=10_000)
            page.screenshot(path=str(tmp_path / "gradio_app.png"), full_page=True)
    finally:
        demo.close()
    assert (tmp_path / "gradio_app.png").stat().st_size > 10_000
    assert outside == []
