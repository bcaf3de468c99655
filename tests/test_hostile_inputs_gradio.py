"""Every hostile file and bad cascade of issue 8 sent to the Gradio app over HTTP: to the
``/segment`` API, to the page's own handler ``/analyse`` and to the upload previews.

One app is served in-process on 127.0.0.1 for the whole module. Each "error" case must come
back as an error whose message matches its pattern (the user's mistake, not a traceback, and
no server path); each "ok" case must return a result of the right size; afterwards a good
request still succeeds. The page takes uploads as ``gr.File``: a file whose extension the page
does not offer is refused by Gradio's file-type check instead, also with a clear message.
Run with ``-s`` to see the table of inputs and answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app import common  # noqa: E402
from app.gradio_app import build_app, launch  # noqa: E402
from tests.browser import free_port  # noqa: E402
from tests.gradio_calls import page_inputs  # noqa: E402
from tests.hostile_files import (  # noqa: E402
    GOOD_SIZE,
    HOSTILE_CASCADES,
    HostileCase,
    write_hostile_files,
)

pytestmark = pytest.mark.slow

MAX_SIDE = 256
#: Signs that an internal error, not a user-facing message, reached the client.
TRACEBACK_SIGNS = re.compile(r"Traceback|File \"|Exception\b|Error\(")
#: Signs that a server-side path (Gradio's upload cache, a temp folder) reached the client.
SERVER_PATH_SIGNS = re.compile(r"/tmp/|gradio[/\\]|[/\\]private[/\\]|[A-Z]:\\")
#: Gradio's refusal of an extension the page's upload does not offer.
FILE_TYPE_REFUSAL = r"Invalid file type\. Please upload a file that is one of these formats"
#: Page summary fragment giving the size the model saw: ``... · 80 x 48``.
SUMMARY_SIZE = re.compile(r"· (\d+) x (\d+)")


@dataclass(frozen=True)
class Served:
    """A running app: its client, the hostile cases written for it, a well-formed image and
    the model its menu selects first."""

    client: Client
    cases: dict[str, HostileCase]
    good: Path
    model: str


@dataclass(frozen=True)
class Answer:
    """What ``/segment`` answered: ``ok`` with the mask's ``(H, W)``, or the error message."""

    ok: bool
    shape: tuple[int, int] | None
    message: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Yields the app served on 127.0.0.1 with the hostile files written to a temporary folder."""
    folder = tmp_path_factory.mktemp("hostile_gradio")
    cases = write_hostile_files(folder / "files")
    models = folder / "no_models"
    demo = build_app(models_dir=models, samples_dir=folder / "no_samples")
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(folder / "downloads"))
        yield Served(
            client, cases, folder / "files" / "good.png", common.list_models(models)[0].name
        )
    finally:
        demo.close()


def segment(client: Client, image: Path, mask: Path | None = None, scales: object = None) -> Answer:
    """Returns the :class:`Answer` of one ``/segment`` request."""
    kwargs: dict = {"image": handle_file(str(image)), "max_side": MAX_SIDE, "arrays": False}
    if mask is not None:
        kwargs["mask"] = handle_file(str(mask))
    if scales is not None:
        kwargs["scales"] = scales
    try:
        png, data, _ = client.predict(**kwargs, api_name="/segment")
    except AppError as exc:
        return Answer(False, None, str(exc))
    with Image.open(png) as img:
        shape = (img.height, img.width)
    assert list(shape) == data["image_size"]
    return Answer(True, shape, "")


def analyse(served: Served, image: Path, mask: Path | None = None) -> Answer:
    """Returns the :class:`Answer` of one request to the page's ``/analyse`` handler, with the
    ``(H, W)`` its summary says the model saw."""
    try:
        outputs = served.client.predict(
            *page_inputs(
                image=handle_file(str(image)),
                mask=None if mask is None else handle_file(str(mask)),
                scales=[0.5, 1.0],
                method="hierarchical",
                model_name=served.model,
                max_side=MAX_SIDE,
            ),
            api_name="/analyse",
        )
    except AppError as exc:
        return Answer(False, None, str(exc))
    summary = outputs[2]
    found = SUMMARY_SIZE.search(summary)
    assert found, summary
    assert outputs[0]["value"]["annotations"], "the overlay has no class"
    return Answer(True, (int(found.group(2)), int(found.group(1))), "")


def preview(served: Served, case: HostileCase) -> Answer:
    """Returns the :class:`Answer` of the page's upload preview of one case's file."""
    try:
        if case.kind == "image":
            path = served.client.predict(handle_file(str(case.path)), api_name="/preview_image")
        else:
            path = served.client.predict(
                handle_file(str(case.path)), served.model, api_name="/preview_mask"
            )
    except AppError as exc:
        return Answer(False, None, str(exc))
    with Image.open(path) as img:
        return Answer(True, (img.height, img.width), "")


def page_offers(case: HostileCase) -> bool:
    """Returns True when the page's upload for the case's kind offers its file extension."""
    types = common.IMAGE_TYPES if case.kind == "image" else common.MASK_TYPES
    return case.path.suffix.lower().lstrip(".") in types


def _check(name: str, answer: Answer, expect: str, pattern: str, size: tuple | None) -> str:
    """Returns ``""`` when ``answer`` is what the case expects, else what went wrong."""
    print(f"  {name:28s} {'ok ' + str(answer.shape) if answer.ok else 'error: ' + answer.message}")
    if expect == "ok":
        want = common.fitted_size(size, MAX_SIDE) if size else None
        return "" if answer.ok and answer.shape == want else f"{name}: wanted {want}, {answer}"
    if answer.ok:
        return f"{name}: accepted, wanted an error matching {pattern!r}"
    if not re.search(pattern, answer.message) or TRACEBACK_SIGNS.search(answer.message):
        return f"{name}: message {answer.message!r} does not match {pattern!r}"
    if SERVER_PATH_SIGNS.search(answer.message):
        return f"{name}: message {answer.message!r} shows a server path"
    return ""


def test_every_hostile_file_gets_a_clear_error_or_a_correct_result(served: Served) -> None:
    print("\n/segment, hostile files:")
    problems = []
    for case in served.cases.values():
        if case.kind == "image":
            answer = segment(served.client, case.path)
        else:
            assert case.image is not None
            answer = segment(served.client, case.image, mask=case.path)
        problems.append(_check(case.name, answer, case.expect, case.message_pattern, case.size))
    assert not [p for p in problems if p], problems


def test_every_bad_cascade_gets_a_clear_error_as_numbers_and_as_text(served: Served) -> None:
    print("\n/segment, bad cascades:")
    problems = []
    for case in HOSTILE_CASCADES:
        # JSON cannot carry NaN: a client sends it as the string "nan" inside the list
        numbers = [s if np.isfinite(s) else str(s) for s in case.scales]
        for form, scales in (("list", numbers), ("text", case.text)):
            answer = segment(served.client, served.good, scales=scales)
            problems.append(
                _check(f"{case.name} ({form})", answer, "error", case.message_pattern, None)
            )
    assert not [p for p in problems if p], problems


def test_the_app_keeps_serving_after_hostile_requests(served: Served) -> None:
    bomb = served.cases["decompression_bomb"].path
    assert not segment(served.client, bomb).ok
    assert not segment(served.client, served.good, scales=["nan"]).ok
    answer = segment(served.client, served.good, scales=[0.5, 1.0])
    assert answer.ok and answer.shape == GOOD_SIZE, answer


def test_every_hostile_file_gets_a_clear_error_or_a_result_on_the_page(served: Served) -> None:
    print("\n/analyse (the page's Segment button), hostile files:")
    problems = []
    for case in served.cases.values():
        image, mask = (case.path, None) if case.kind == "image" else (case.image, case.path)
        assert image is not None
        pattern = case.message_pattern if page_offers(case) else FILE_TYPE_REFUSAL
        expect = case.expect if page_offers(case) else "error"
        answer = analyse(served, image, mask)
        problems.append(_check(case.name, answer, expect, pattern, case.size))
        good = analyse(served, served.good)  # the next good request succeeds
        problems.append(_check(f"good after {case.name}", good, "ok", "", GOOD_SIZE))
    assert not [p for p in problems if p], problems


def test_upload_previews_read_every_file_with_the_apps_readers(served: Served) -> None:
    print("\n/preview_image and /preview_mask (shown on upload), hostile files:")
    problems = []
    for case in served.cases.values():
        answer = preview(served, case)
        if not page_offers(case):
            problems.append(_check(case.name, answer, "error", FILE_TYPE_REFUSAL, None))
        elif case.expect == "ok":
            problems.append(_check(case.name, answer, "ok", "", case.size))
        elif not answer.ok:  # refused on upload already, with the message a run would give
            problems.append(_check(case.name, answer, "error", case.message_pattern, None))
        # else: a preview checks the file alone; the minimum side, the mask's size against the
        # image and its ids against the label set are checked when a run starts
    unreadable = ("decompression_bomb", "truncated_jpeg", "zero_bytes", "text_as_png")
    refused = {c for c in unreadable if not preview(served, served.cases[c]).ok}
    assert refused == set(unreadable)
    assert not [p for p in problems if p], problems
