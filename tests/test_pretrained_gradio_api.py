"""Asking the Gradio app's ``/segment`` API for the pretrained ``cityscapes`` model
(gradio_client over real HTTP, the app in-process on 127.0.0.1).

``HMSA_URL_CITYSCAPES`` points at a loopback server: one that is gone (a clear error, and the
app keeps serving), and one serving the recipe weights as a genuine 290 MB ``.pdparams``
(downloaded with progress, converted, then used to segment).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.gradio_app import build_app, launch  # noqa: E402
from hmsa_core.data.synthscapes import write_samples  # noqa: E402
from hmsa_core.pretrained import PRETRAINED, cached_file  # noqa: E402
from tests.browser import free_port  # noqa: E402
from tests.loopback_server import LoopbackServer, Route, loopback_server  # noqa: E402
from tests.paddle_recipe import recipe_pdparams  # noqa: E402

pytestmark = pytest.mark.slow

PATH = "/model.pdparams"


@pytest.fixture(scope="module")
def weights_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    # A slowed link (about 5 s for the 290 MB) so the download's progress can be watched.
    route = Route(path=recipe_pdparams(tmp_path_factory), chunk_delay=0.004)
    with loopback_server({PATH: route}) as server:
        yield server


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Client, Path, Path]]:
    """Yields ``(client, sample image, download cache)`` for an app on 127.0.0.1."""
    samples = tmp_path / "samples"
    write_samples(samples, count=1, size=(64, 128), seed=2)
    cache = tmp_path / "cache"
    monkeypatch.setenv("HMSA_CACHE_DIR", str(cache))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    monkeypatch.delenv("HMSA_OFFLINE", raising=False)
    monkeypatch.delenv("HMSA_DEFAULT_MODEL", raising=False)
    demo = build_app(samples_dir=samples)
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        yield client, sorted(samples.glob("*[0-9].png"))[0], cache
    finally:
        demo.close()


def _segment(client: Client, image: Path, model: str) -> tuple:
    return client.predict(
        image=handle_file(str(image)),
        scales=[0.5, 1.0, 2.0],
        method="hierarchical",
        model=model,
        max_side=128,
        api_name="/segment",
    )


def test_server_down_gives_a_clear_error_and_the_app_keeps_serving(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, image, _ = served
    with loopback_server({}) as gone:
        url = gone.url + PATH
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", url)
    with pytest.raises(AppError, match="cannot reach") as info:
        _segment(client, image, "cityscapes")
    assert url in str(info.value)
    _, data, _ = _segment(client, image, "hmsa-lite")
    assert data["model"] == "hmsa-lite"


def test_cityscapes_is_downloaded_converted_and_segments(
    served, weights_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, image, cache = served
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", weights_server.url + PATH)
    before = len(weights_server.requests_to(PATH))
    job = client.submit(
        image=handle_file(str(image)),
        scales=[0.5, 1.0, 2.0],
        method="hierarchical",
        model="cityscapes",
        max_side=128,
        api_name="/segment",
    )
    shown: set[str] = set()
    while not job.done():
        for unit in job.status().progress_data or []:
            shown.add(unit.desc or "")
        time.sleep(0.05)
    png, data, _ = job.result()
    assert any(d.startswith("downloading cityscapes:") for d in shown), shown
    assert len(weights_server.requests_to(PATH)) == before + 1
    assert cached_file(PRETRAINED["cityscapes"], cache).is_file()
    assert data["model"] == "cityscapes" and data["label_set"] == "cityscapes"
    with Image.open(png) as mask:
        assert mask.mode == "P" and np.asarray(mask).shape == (64, 128)
    _, again, _ = _segment(client, image, "cityscapes")  # cached now: no second download
    assert len(weights_server.requests_to(PATH)) == before + 1
    assert again["scales"] == [0.5, 1.0, 2.0]
