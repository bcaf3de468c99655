"""The Gradio page's first visit, before/after slider and class toggles over real HTTP.

The app runs in-process on 127.0.0.1 with the bundled samples (or SynthScapes scenes written
for the test); ``gradio_client`` calls the events the page calls: ``/first_visit`` (the page
load), ``/show_classes`` (a toggle), ``/example`` (a click on a sample). Expected pixels are
derived from the files the app returns and the app's own readers, never hard-coded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app import common
from app.gradio_app import build_app, launch
from app.gradio_parts.first_visit import first_sample, sample_label
from app.gradio_parts.views import class_overlay
from hmsa_core.labels import CITYSCAPES
from tests.browser import free_port

pytestmark = pytest.mark.slow

MAX_SIDE_LABEL = "Maximum image side (px)"

#: Indices of the page's analysis outputs (``/example``); ``/first_visit`` puts the image
#: and the mask uploads first (:data:`IMAGE`, :data:`MASK`), shifting them by two.
OVERLAY, GALLERY, SUMMARY, DOWNLOADS, SLIDER, TOGGLES = 0, 1, 2, 8, 9, 10
IMAGE, MASK = 0, 1


def first_visit(client: Client) -> tuple[str, str | None, list]:
    """Returns ``(image, mask, analysis outputs)`` of the page load's ``/first_visit``."""
    outputs = client.predict(api_name="/first_visit")
    return outputs[IMAGE], outputs[MASK], list(outputs[2:])


@dataclass
class Served:
    """An app on 127.0.0.1 and what the tests need to know about it."""

    url: str
    samples: list[common.Sample]
    opening: common.Sample
    max_side: int
    downloads: Path

    def client(self) -> Client:
        """Returns a new client: a new browser session."""
        return Client(self.url, verbose=False, download_files=str(self.downloads))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Yields the app served with the bundled samples (SynthScapes scenes when absent), with
    the default model left to the app (``HMSA_DEFAULT_MODEL`` unset: offline)."""
    scratch = tmp_path_factory.mktemp("gradio_first_visit")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("HMSA_DEFAULT_MODEL", raising=False)
        yield from serve(scratch)


def serve(scratch: Path) -> Iterator[Served]:
    """Yields :class:`Served` for the app built and served now."""
    folder = common.samples_dir()
    if not common.list_samples(folder):
        from hmsa_core.data.synthscapes import write_samples

        folder = scratch / "samples"
        write_samples(folder, count=2, size=(128, 256))
    samples = common.list_samples(folder)
    demo = build_app(samples_dir=folder)
    max_side = next(
        c.value for c in demo.blocks.values() if getattr(c, "label", "") == MAX_SIDE_LABEL
    )
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        opening = first_sample(samples)
        assert opening is not None
        yield Served(url, samples, opening, int(max_side), scratch / "downloads")
    finally:
        demo.close()


def endpoint_defaults(client: Client, api_name: str) -> list:
    """Returns the initial values of the input components of the event ``api_name`` as the
    served page declares them (so the test keeps up with settings added to the page)."""
    config = client.config
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    (event,) = [d for d in config["dependencies"] if d.get("api_name") == api_name]
    return [values.get(i) for i in event["inputs"]]


def read_ids(path: str) -> np.ndarray:
    """Returns the class ids ``(H, W)`` of an indexed prediction PNG."""
    with Image.open(path) as img:
        assert img.mode == "P"
        return np.asarray(img).astype(np.int64)


def read_rgb(path: str) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 pixels of an image file."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_the_page_opens_on_a_computed_sample_with_panels_and_scores(served: Served) -> None:
    image, mask, outputs = first_visit(served.client())
    assert Path(image).name == served.opening.image_path.name
    assert (mask is None) == (served.opening.mask_path is None)
    summary = outputs[SUMMARY]
    assert "mIoU vs. the mask" in summary, summary
    assert summary.startswith("**hmsa-lite**"), summary  # the bundled model: no download
    assert len(outputs[GALLERY]) == 9  # prediction, attention and weight of 0.5, 1 and 2
    ids = read_ids(outputs[DOWNLOADS][0])
    present = [CITYSCAPES.names[i] for i in np.unique(ids)]
    annotations = [a["label"] for a in outputs[OVERLAY]["value"]["annotations"]]
    assert sorted(annotations) == sorted(present)
    toggles = outputs[TOGGLES]
    assert sorted(cid for _, cid in toggles["choices"]) == sorted(np.unique(ids).tolist())
    assert sorted(toggles["value"]) == sorted(np.unique(ids).tolist())


def component_props(served: Served, kind: str, elem_id: str) -> list[dict]:
    """Returns the properties of the page's components of type ``kind`` and ``elem_id``, as
    the served app's config lists them."""
    config = served.client().config
    return [
        c["props"]
        for c in config["components"]
        if c.get("type") == kind and c["props"].get("elem_id") == elem_id
    ]


def test_the_menu_offers_each_pretrained_model_with_its_download_cost(served: Served) -> None:
    from hmsa_core.pretrained import PRETRAINED

    menus = component_props(served, "dropdown", "model")  # the image page's menu
    assert len(menus) == 1
    assert menus[0]["value"] == "hmsa-lite"
    labels = {name: label for label, name in menus[0]["choices"]}
    for name in PRETRAINED:
        assert name in labels and re.search(r"\d+ MB", labels[name]), labels


def test_the_slider_compares_the_input_with_its_overlay(served: Served) -> None:
    _, _, outputs = first_visit(served.client())
    before, after = (read_rgb(p) for p in outputs[SLIDER])
    expected_input = common.load_image(served.opening.image_path, served.max_side).rgb
    assert np.array_equal(before, expected_input)
    ids = read_ids(outputs[DOWNLOADS][0])
    assert np.array_equal(after, class_overlay(expected_input, ids, CITYSCAPES))


def test_toggling_classes_redraws_the_overlay_without_a_run(served: Served) -> None:
    client = served.client()
    _, _, outputs = first_visit(client)
    ids = read_ids(outputs[DOWNLOADS][0])
    image = read_rgb(outputs[SLIDER][0])
    largest, second = (cid for _, cid in outputs[TOGGLES]["choices"][:2])
    slider, overlay = client.predict([second], api_name="/show_classes")
    before, after = (read_rgb(p) for p in slider)
    assert np.array_equal(before, image)
    assert np.array_equal(after, class_overlay(image, ids, CITYSCAPES, [second]))
    assert np.array_equal(after[ids == largest], image[ids == largest])  # hidden: bare input
    assert [a["label"] for a in overlay["annotations"]] == [CITYSCAPES.names[second]]
    slider, overlay = client.predict([], api_name="/show_classes")
    assert np.array_equal(read_rgb(slider[1]), image) and overlay["annotations"] == []


def test_a_toggle_before_any_result_is_refused_and_the_app_keeps_serving(served: Served) -> None:
    with pytest.raises(AppError):
        served.client().predict([0], api_name="/show_classes")
    _, _, outputs = first_visit(served.client())
    assert outputs[SLIDER] is not None


def test_clicking_a_sample_without_a_mask_runs_it_and_says_it_has_no_ground_truth(
    served: Served,
) -> None:
    unlabelled = [s for s in served.samples if s.mask_path is None]
    sample = unlabelled[0] if unlabelled else served.samples[-1]
    client = served.client()
    settings = endpoint_defaults(client, "example")[2:]  # after the image and the mask
    outputs = client.predict(
        handle_file(str(sample.image_path)), None, *settings, api_name="/example"
    )
    summary = outputs[SUMMARY]
    assert "Add the image's class-id mask" in summary, summary
    if unlabelled:
        assert "no ground truth" in sample_label(sample)


def test_the_examples_show_a_thumbnail_and_a_readable_name_per_sample(served: Served) -> None:
    datasets = component_props(served, "dataset", "examples")
    assert len(datasets) == 1
    props = datasets[0]
    assert [c["name"] for c in props["components"]] == ["image", "textbox"]
    assert props.get("sample_labels") is None  # labels would replace the thumbnails
    names = [row[1] for row in props["samples"]]
    assert names == [sample_label(s) for s in served.samples]
    thumbnails = [Path(row[0]["path"]).name for row in props["samples"]]
    assert thumbnails == [s.image_path.name for s in served.samples]
