"""The Gradio page's per-class overlay and its lazy example cache, without a server.

The before/after slider's overlay colours exactly the ticked classes (hidden classes keep the
input's pixels) and the toggles list the classes present, largest first. The example cache
computes a (sample, settings, weights) request once, serves it from memory after, and
computes again when the file, the settings or the weights change, or the entry expires.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")

from analysis.figures import blend
from app.gradio_parts.first_visit import ExampleResults, first_sample, sample_label
from app.gradio_parts.held_result import HeldResult, show_classes
from app.gradio_parts.views import (
    OVERLAY_OPACITY,
    annotated_layers,
    class_choices,
    class_overlay,
)
from hmsa_core.labels import CITYSCAPES


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image (20, 30, 3) uint8 noise, pred (20, 30))``: road on the left half,
    sky on the top right, car on the bottom right, one ignore pixel."""
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pred = np.zeros((20, 30), dtype=np.int16)
    pred[:8, 15:] = 10  # sky
    pred[8:, 15:] = 13  # car
    pred[0, 0] = 255
    return image, pred


def test_the_overlay_colours_only_the_ticked_classes(scene) -> None:
    image, pred = scene
    painted = blend(image, CITYSCAPES.colorize(pred), OVERLAY_OPACITY)
    assert np.array_equal(class_overlay(image, pred, CITYSCAPES), painted)
    shown = class_overlay(image, pred, CITYSCAPES, [10])
    sky = pred == 10
    assert np.array_equal(shown[sky], painted[sky])
    assert np.array_equal(shown[~sky], image[~sky])
    assert not np.array_equal(shown[sky], image[sky])
    assert np.array_equal(class_overlay(image, pred, CITYSCAPES, []), image)


def test_toggles_list_the_classes_present_largest_first(scene) -> None:
    _, pred = scene
    areas = {cid: float((pred == cid).mean()) for cid in (0, 10, 13)}
    order = sorted(areas, key=lambda c: -areas[c])
    choices = class_choices(pred, CITYSCAPES)
    assert [cid for _, cid in choices] == order  # the ignore pixel is no class
    assert choices[0][0] == f"{CITYSCAPES.names[order[0]]} ({areas[order[0]]:.0%})"
    _, layers = annotated_layers(np.zeros((20, 30, 3), np.uint8), pred, CITYSCAPES, [13, 0])
    assert [name for _, name in layers] == [CITYSCAPES.names[c] for c in order if c in (0, 13)]
    assert np.array_equal(layers[0][0] > 0, pred == order[0])


def test_toggling_redraws_from_the_held_result_and_says_what_to_do_without_one(scene) -> None:
    image, pred = scene
    held = HeldResult(image, pred, CITYSCAPES)
    (before, after), (base, layers) = show_classes(held, [13])
    assert np.array_equal(before, image) and np.array_equal(base, image)
    assert np.array_equal(after, class_overlay(image, pred, CITYSCAPES, [13]))
    assert [name for _, name in layers] == ["car"]
    with pytest.raises(Exception, match="press Segment or click a sample"):
        show_classes(None, [13])


def test_samples_have_readable_names_and_the_page_opens_on_one_with_a_mask(tmp_path) -> None:
    from app import common

    photo = common.Sample("photo_astronaut", tmp_path / "a.png", None)
    scene_ = common.Sample("synthscapes_val_003", tmp_path / "b.png", tmp_path / "b_mask.png")
    assert first_sample([photo, scene_]) is scene_
    assert first_sample([photo]) is photo and first_sample([]) is None
    assert "synthscapes_val_003" not in sample_label(scene_)
    assert "no ground truth" in sample_label(photo)


class Counted:
    """A real compute function that counts its calls and returns its arguments."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, image: str | None, mask: str | None, *settings: object) -> tuple:
        self.calls += 1
        if self.fail:
            raise ValueError("bad input")
        return (image, mask, *settings)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_an_example_is_computed_once_then_served_until_something_changes(tmp_path) -> None:
    compute, weights = Counted(), {"key": "v1"}
    cache = ExampleResults(compute, lambda settings: weights["key"], kept=4, ttl_s=60)
    image = write(tmp_path / "a.png", b"pixels")
    copy = write(tmp_path / "copy_of_a.png", b"pixels")
    first = cache.outputs(image, None, [0.5, 1.0], "hmsa-lite")
    assert first == (image, None, [0.5, 1.0], "hmsa-lite")
    assert cache.outputs(copy, None, [0.5, 1.0], "hmsa-lite") is first  # same bytes, other path
    assert compute.calls == cache.computed == 1
    cache.outputs(image, None, [0.5, 1.0, 2.0], "hmsa-lite")  # other settings
    assert compute.calls == 2
    weights["key"] = "v2"  # the weights file changed
    cache.outputs(image, None, [0.5, 1.0], "hmsa-lite")
    assert compute.calls == 3
    write(tmp_path / "a.png", b"other pixels")
    cache.outputs(image, None, [0.5, 1.0], "hmsa-lite")
    assert compute.calls == 4


def test_entries_expire_are_bounded_and_failures_are_not_kept(tmp_path) -> None:
    compute = Counted()
    cache = ExampleResults(compute, lambda settings: "", kept=2, ttl_s=0.2)
    images = [write(tmp_path / f"{i}.png", bytes([i])) for i in range(3)]
    for image in images:
        cache.outputs(image, None)
    cache.outputs(images[0], None)  # dropped as least recently used
    assert compute.calls == 4
    cache.outputs(images[0], None)
    assert compute.calls == 4
    time.sleep(0.3)
    cache.outputs(images[0], None)
    assert compute.calls == 5
    failing = ExampleResults(Counted(fail=True), lambda settings: "")
    for _ in range(2):
        with pytest.raises(ValueError, match="bad input"):
            failing.outputs(images[0], None)
    assert failing.computed == 0
    with pytest.raises(ValueError, match="kept >= 1"):
        ExampleResults(compute, lambda settings: "", kept=0)


def test_concurrent_requests_for_one_example_compute_it_once(tmp_path) -> None:
    gate = threading.Event()

    def slow(image: str | None, mask: str | None) -> tuple:
        gate.wait(5)
        return (image,)

    cache = ExampleResults(slow, lambda settings: "")
    image = write(tmp_path / "a.png", b"x")
    answers: list[tuple] = []
    threads = [
        threading.Thread(target=lambda: answers.append(cache.outputs(image, None)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(answers) == 4 and cache.computed == 1
