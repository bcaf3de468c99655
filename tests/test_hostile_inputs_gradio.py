"""Every hostile file and bad cascade of issue 8 sent to the Gradio ``/segment`` API over HTTP.

One app is served in-process on 127.0.0.1 for the whole module. Each "error" case must come
back as an error whose message matches its pattern (the user's mistake, not a traceback); each
"ok" case must return a mask of the right size; afterwards a good request still succeeds.
Run with ``-s`` to see the table of inputs and answers.
"""

from __future__ import annotations

import re
import socket
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


@dataclass(frozen=True)
class Served:
    """A running app: its client, the hostile cases written for it and a well-formed image."""

    client: Client
    cases: dict[str, HostileCase]
    good: Path


@dataclass(frozen=True)
class Answer:
    """What ``/segment`` answered: ``ok`` with the mask's ``(H, W)``, or the error message."""

    ok: bool
    shape: tuple[int, int] | None
    message: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Yields the app served on 127.0.0.1 with the hostile files written to a temporary folder."""
    folder = tmp_path_factory.mktemp("hostile_gradio")
    cases = write_hostile_files(folder / "files")
    demo = build_app(models_dir=folder / "no_models", samples_dir=folder / "no_samples")
    url = launch(demo, host="127.0.0.1", port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(folder / "downloads"))
        yield Served(client, cases, folder / "files" / "good.png")
    finally:
        demo.close()


def segment(client: Client, image: Path, mask: Path | None = None, scales: object = None) -> Answer:
    """Returns the :class:`Answer` of one ``/segment`` request."""
    kwargs: dict = {"image": handle_file(str(image)), "max_side": MAX_SIDE}
    if mask is not None:
        kwargs["mask"] = handle_file(str(mask))
    if scales is not None:
        kwargs["scales"] = scales
    try:
        png, data = client.predict(**kwargs, api_name="/segment")
    except AppError as exc:
        return Answer(False, None, str(exc))
    with Image.open(png) as img:
        shape = (img.height, img.width)
    assert list(shape) == data["image_size"]
    return Answer(True, shape, "")


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
