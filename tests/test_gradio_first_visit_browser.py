"""The Gradio page's first visit in a real browser: Debian chromium driven by playwright.

Opening the page, with no click, shows a computed sample: the before/after slider, the class
toggles, the per-scale gallery and the scores, and a table of sample thumbnails with readable
names. Dragging the slider moves the boundary between input and overlay; unticking a class
redraws the overlay. While other requests hold the one worker, a click on Segment says how
many requests are ahead. Screenshots go to ``results/screens/gradio_*.png``. Without chromium
the test is skipped, or fails when ``HMSA_REQUIRE_BROWSER=1`` (see tests/browser.py).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from app import common
from app.gradio_app import build_app, launch
from app.gradio_parts import zerogpu
from app.gradio_parts.first_visit import sample_label
from tests.browser import (
    chromium_or_skip,
    free_port,
    local_page,
    noise_images,
    playwright_or_skip,
)

#: Client states of a request that has not reached the server's queue yet.
NOT_QUEUED_YET = ("STARTING", "JOINING_QUEUE")
SCREENS = Path(__file__).resolve().parent.parent / "results" / "screens"
LOADED_IMAGES = (
    "(sel) => [...document.querySelectorAll(sel)]"
    ".filter(i => i.complete && i.naturalWidth > 0).length"
)


def boundary(page) -> float:
    """Returns where the slider shows the overlay from, in percent of the width."""
    style = page.locator("#before-after img.fixed").get_attribute("style") or ""
    found = re.search(r"inset\(0px 0px 0px ([\d.]+)%\)", style)
    assert found, style
    return float(found.group(1))


@pytest.mark.slow
def test_the_first_visit_shows_a_result_without_a_click_and_the_slider_compares(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    playwright_api = playwright_or_skip()
    from gradio_client import Client, handle_file

    monkeypatch.setenv("HMSA_GRADIO_CONCURRENCY", "1")  # so a few requests make a queue
    monkeypatch.delenv("HMSA_DEFAULT_MODEL", raising=False)  # the bundled model: offline
    samples = common.list_samples()
    if not samples:
        from hmsa_core.data.synthscapes import write_samples

        write_samples(tmp_path / "samples", count=2, size=(128, 256))
        samples = common.list_samples(tmp_path / "samples")
    busy = noise_images(tmp_path / "busy", 3, (64, 128), seed=1, prefix="busy")
    # The script's requests wait on ``release`` inside the model call, so while it is clear
    # the one worker stays busy and the queue holds exactly the requests behind it.
    release = threading.Event()
    release.set()
    real_infer = zerogpu.infer

    def held_infer(*args, **kwargs):
        assert release.wait(timeout=120), "the test never released the worker"
        return real_infer(*args, **kwargs)

    monkeypatch.setattr(zerogpu, "infer", held_infer)
    demo = build_app(samples_dir=samples[0].image_path.parent)
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    SCREENS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    try:
        with local_page(playwright_api, chromium, outside) as page:
            page.goto(url)
            # No click anywhere: the page computes its first sample on load.
            page.wait_for_function(
                f"() => ({LOADED_IMAGES})('#before-after img') == 2", timeout=90_000
            )
            page.wait_for_function(
                f"() => ({LOADED_IMAGES})('#scale-gallery img') >= 9", timeout=30_000
            )
            page.get_by_text("mIoU vs. the mask").first.wait_for(timeout=10_000)
            toggles = page.locator("#class-toggles input[type=checkbox]")
            assert toggles.count() >= 2
            assert all(toggles.nth(i).is_checked() for i in range(toggles.count()))
            page.wait_for_function(
                f"() => ({LOADED_IMAGES})('#examples img') >= {min(len(samples), 12)}",
                timeout=20_000,
            )
            assert page.locator("#examples").get_by_text(sample_label(samples[0])).count()
            page.screenshot(path=str(SCREENS / "gradio_first_visit.png"))  # what one sees

            slider = page.locator("#before-after")
            slider.scroll_into_view_if_needed()
            assert boundary(page) == pytest.approx(50, abs=1)
            handle = page.locator("#before-after [data-testid=slider]").bounding_box()
            box = page.locator("#before-after img.fixed").bounding_box()
            assert handle is not None and box is not None
            y = box["y"] + box["height"] / 2
            page.mouse.move(handle["x"] + handle["width"] / 2, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.25, y, steps=8)
            page.mouse.up()
            assert boundary(page) == pytest.approx(25, abs=3)

            overlay_src = page.locator("#before-after img.fixed").get_attribute("src")
            toggles.first.uncheck()
            page.wait_for_function(
                "(old) => document.querySelector('#before-after img.fixed').src != old",
                arg=overlay_src,
                timeout=20_000,
            )
            assert not toggles.first.is_checked()
            page.wait_for_function(
                f"() => ({LOADED_IMAGES})('#before-after img') == 2", timeout=20_000
            )
            region = page.locator("#before-after").bounding_box()
            classes = page.locator("#class-toggles").bounding_box()
            assert region is not None and classes is not None
            page.screenshot(
                path=str(SCREENS / "gradio_slider.png"),
                clip={
                    "x": region["x"],
                    "y": region["y"],
                    "width": region["width"],
                    "height": classes["y"] + classes["height"] - region["y"],
                },
            )

            # Requests from a script hold the one worker: a click on Segment waits in the
            # queue behind them and the page says how many are ahead.
            client = Client(url, verbose=False, download_files=False)
            release.clear()
            jobs = [
                client.submit(
                    image=handle_file(str(path)),
                    scales=[1.0],
                    arrays=False,
                    max_side=128,
                    api_name="/segment",
                )
                for path in busy
            ]
            deadline = time.monotonic() + 60
            while any(job.status().code.name in NOT_QUEUED_YET for job in jobs):
                assert time.monotonic() < deadline, [job.status() for job in jobs]
                time.sleep(0.02)
            page.locator("#run").click()
            ahead = page.wait_for_function(
                "() => (document.body.innerText.match(/(\\d+) ahead of you/) || [])[1]",
                timeout=30_000,
            ).json_value()
            page.screenshot(path=str(SCREENS / "gradio_queue.png"))
            release.set()
            # one script request holds the worker, the others wait ahead of the click
            assert int(ahead) == len(busy) - 1
            assert page.get_by_text(re.compile(r"queue: \d+/\d+")).count() == 0
            for job in jobs:
                job.result(timeout=120)
    finally:
        release.set()
        demo.close()
    assert (SCREENS / "gradio_first_visit.png").stat().st_size > 10_000
    assert outside == []
