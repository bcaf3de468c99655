"""The Gradio page in a real browser: Debian chromium driven by playwright.

Submitting without an image shows the error and the page keeps working; clicking an example
and submitting renders the per-scale gallery; the page fetches nothing from outside
127.0.0.1 (it must work offline).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

from app import common  # noqa: E402
from app.gradio_app import build_app, launch  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed")
def test_example_submit_renders_the_scale_gallery(tmp_path: Path) -> None:
    demo = build_app(samples_dir=small_samples(tmp_path / "samples"))
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    outside: list[str] = []
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on(
                    "request",
                    lambda r: (
                        None
                        if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                        else outside.append(r.url)
                    ),
                )
                page.goto(url)
                run = page.locator("#run")
                run.wait_for(timeout=30_000)

                run.click()  # no image yet: the error is shown, nothing breaks
                page.get_by_text("no image given").first.wait_for(timeout=20_000)

                page.locator("#examples button").first.click()
                page.locator("#input-image img").first.wait_for(timeout=20_000)
                page.locator("#input-mask img").first.wait_for(timeout=20_000)
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
                browser.close()
    finally:
        demo.close()
    assert (tmp_path / "gradio_app.png").stat().st_size > 10_000
    assert outside == []
