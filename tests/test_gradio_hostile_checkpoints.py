"""Hostile checkpoints in the models folder, selected through the Gradio app over real HTTP.

``HMSA_MODELS_DIR`` points at a folder holding a truncated ``.safetensors``, a ``.pth`` of
random bytes and a ``.pth`` whose pickle ``__reduce__`` would write a marker file. The app
(served in-process on 127.0.0.1) lists them; selecting each in the model menu, the page's
Segment handler and the ``/segment`` API all give a clear error naming the file, the marker
never appears, and a good request right after still succeeds.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import hmsa_core  # noqa: E402
from app.gradio_app import build_app, launch  # noqa: E402
from hmsa_core.checkpoints.native import save_native  # noqa: E402
from tests.browser import free_port  # noqa: E402
from tests.gradio_calls import page_inputs  # noqa: E402
from tests.hostile_files import GOOD_SIZE, WritesMarker, write_good_image  # noqa: E402

pytestmark = pytest.mark.slow

#: Each hostile file and the reason its error must give.
HOSTILE_CHECKPOINTS: dict[str, str] = {
    "truncated.safetensors": r"not a readable safetensors file",
    "garbage.pth": r"not a loadable official checkpoint",
    "evil.pth": r"GLOBAL (builtins\.)?exec",
}
#: Signs that an internal error, not a user-facing message, reached the client.
TRACEBACK_SIGNS = re.compile(r"Traceback|File \"|Exception\b|Error\(")


@dataclass(frozen=True)
class Served:
    """The running app, its models folder, the payload's marker path and a good image."""

    client: Client
    models: Path
    marker: Path
    good: Path


def write_hostile_checkpoints(folder: Path, marker: Path) -> None:
    """Writes the files of :data:`HOSTILE_CHECKPOINTS` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    whole = save_native(hmsa_core.build("lite", num_classes=19), folder / "whole.safetensors")
    data = whole.read_bytes()
    whole.unlink()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "garbage.pth").write_bytes(random.Random(0).randbytes(4096))
    state = {"module.ocr.cls_head.weight": torch.zeros(19, 512, 1, 1)}
    payload = {"state_dict": state, "num_classes": 19, "mean_iu": WritesMarker(marker)}
    torch.save(payload, folder / "evil.pth")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Yields the app served on 127.0.0.1 with ``HMSA_MODELS_DIR`` set to the hostile folder."""
    root = tmp_path_factory.mktemp("hostile_checkpoints")
    models, marker = root / "models", root / "marker"
    write_hostile_checkpoints(models, marker)
    good = write_good_image(root / "good.png")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HMSA_MODELS_DIR", str(models))
        demo = build_app(samples_dir=root / "no_samples")
        url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            client = Client(url, verbose=False, download_files=str(root / "downloads"))
            yield Served(client, models, marker, good)
        finally:
            demo.close()


def assert_clear(exc: pytest.ExceptionInfo[AppError], name: str, reason: str, folder: Path) -> None:
    """Asserts an error names the file and the reason, with no traceback and no server path."""
    message = str(exc.value)
    assert re.search(rf"{re.escape(name)}.*{reason}", message), message
    assert not TRACEBACK_SIGNS.search(message), message
    assert str(folder) not in message, message


def segment_ok(served: Served) -> None:
    """Asserts a good ``/segment`` request with the default model succeeds."""
    png, data, _ = served.client.predict(
        image=handle_file(str(served.good)), scales=[0.5, 1.0], arrays=False, api_name="/segment"
    )
    assert data["image_size"] == list(GOOD_SIZE) and Path(png).is_file()


def test_the_payload_is_live(tmp_path: Path) -> None:
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(WritesMarker(control)))
    assert control.exists(), "the payload must run when unpickled for the tests to mean anything"


def test_the_menu_lists_each_file_and_selecting_it_says_why_it_cannot_load(
    served: Served,
) -> None:
    for name, reason in HOSTILE_CHECKPOINTS.items():
        _, about = served.client.predict(
            name, [0.5, 1.0], "hierarchical", api_name="/model_changed"
        )
        assert re.search(rf"`{re.escape(name)}`.*cannot be read: .*{reason}", about), about
    assert not served.marker.exists()


def test_running_a_hostile_checkpoint_is_a_clear_error_and_the_app_keeps_serving(
    served: Served,
) -> None:
    for name, reason in HOSTILE_CHECKPOINTS.items():
        with pytest.raises(AppError) as api_error:
            served.client.predict(
                image=handle_file(str(served.good)), model=name, api_name="/segment"
            )
        assert_clear(api_error, name, reason, served.models)
        with pytest.raises(AppError) as page_error:
            served.client.predict(
                *page_inputs(
                    image=handle_file(str(served.good)),
                    scales=[0.5, 1.0],
                    method="hierarchical",
                    model_name=name,
                    max_side=256,
                ),
                api_name="/analyse",
            )
        assert_clear(page_error, name, reason, served.models)
        segment_ok(served)
    assert not served.marker.exists()
    assert sorted(p.name for p in served.models.iterdir()) == sorted(HOSTILE_CHECKPOINTS)
