"""Every hostile file and bad cascade of issue 8 fed to the Streamlit explorer through AppTest.

One AppTest session takes them all in turn: each image through the image uploader, each mask
(with its well-formed image) through the mask uploader, each bad cascade typed into the free-text
scales field. Each "error" case must show an ``st.error`` whose text matches its pattern and no
exception element; each "ok" case must produce a result of the right size; afterwards a bundled
sample still runs in the same session. Run with ``-s`` to see the table of inputs and answers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import common
from app.explorer_parts.sidebar import SOURCE_SAMPLE, SOURCE_UPLOAD
from hmsa_core.data.synthscapes import write_samples
from tests.hostile_files import GOOD_IMAGE, GOOD_SIZE, HOSTILE_CASCADES, write_hostile_files

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
TIMEOUT = 120
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".tif": "image/tiff"}


def _upload(at: AppTest, key: str, path: Path | None) -> AppTest:
    """Uploads ``path`` (``None``: clears the uploader) and reruns. A file type the uploader
    does not offer (GIF) is sent renamed to ``.png``, as a user would rename it: Streamlit
    itself refuses other extensions before the app runs (its browser side never sends them)."""
    value = None
    if path is not None:
        name = path.name if path.suffix != ".gif" else path.name + ".png"
        value = (name, path.read_bytes(), MIME[Path(name).suffix])
    at.file_uploader(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _answer(at: AppTest) -> str:
    errors = _errors(at)
    if errors:
        return "error: " + " | ".join(errors)
    return f"ok {at.session_state['hmsa_result'].size}"


def _check_error(at: AppTest, name: str, pattern: str, result_drawn: bool) -> str:
    """Returns ``""`` when the page shows an error matching ``pattern``, else what went wrong."""
    print(f"  {name:28s} {_answer(at)}")
    if not any(re.search(pattern, e) for e in _errors(at)):
        return f"{name}: errors {_errors(at)} do not match {pattern!r}"
    if bool(at.get("plotly_chart")) != result_drawn:
        return f"{name}: a result was {'not ' if result_drawn else ''}drawn"
    return ""


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points the explorer at one small sample and no extra models; returns the hostile folder."""
    write_samples(tmp_path / "samples", count=1, size=(48, 96), seed=2)
    monkeypatch.setenv(common.SAMPLES_DIR_ENV, str(tmp_path / "samples"))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    return tmp_path / "hostile"


def test_hostile_inputs_show_clear_errors_and_the_session_keeps_working(app_env: Path) -> None:
    cases = write_hostile_files(app_env)
    good = app_env / GOOD_IMAGE
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception and not _errors(at)
    at.radio(key="image_source").set_value(SOURCE_UPLOAD).run()
    problems = []

    print("\nexplorer, hostile files:")
    for case in cases.values():
        if case.kind == "image":
            _upload(at, "image_upload", case.path)
        else:
            _upload(at, "mask_upload", case.path)  # the image is uploaded below
            _upload(at, "image_upload", case.image)
        if case.expect == "error":
            drawn = case.kind == "mask"  # a bad mask only drops the scores
            problems.append(_check_error(at, case.name, case.message_pattern, drawn))
        else:
            print(f"  {case.name:28s} {_answer(at)}")
            want = common.fitted_size(case.size, common.DEFAULT_MAX_SIDE)
            result = at.session_state["hmsa_result"]
            if _errors(at) or result.size != want or not at.get("plotly_chart"):
                problems.append(f"{case.name}: {_errors(at)}, size {result.size}, wanted {want}")
        _upload(at, "mask_upload", None)

    print("explorer, bad cascades typed into 'More scales' (no toggled scale):")
    _upload(at, "image_upload", good)
    at.pills(key="scale_pills").set_value([]).run()
    for cascade in HOSTILE_CASCADES:
        at.text_input(key="extra_scales").input(cascade.text).run()
        assert not at.exception, [e.value for e in at.exception]
        problems.append(_check_error(at, cascade.name, cascade.message_pattern, False))
    assert not [p for p in problems if p], problems

    at.text_input(key="extra_scales").input("0.5, 1").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert at.session_state["hmsa_result"].size == GOOD_SIZE
    at.radio(key="image_source").set_value(SOURCE_SAMPLE).run()
    assert not at.exception and not _errors(at), _errors(at)
    assert at.session_state["hmsa_result"].size == (48, 96)
    assert at.get("plotly_chart")
