"""The full-size path: ``load_model("cityscapes")`` downloads a 290 MB ``.pdparams`` from a
loopback server, converts it once, caches it with its SHA-256, and segments like PaddleSeg.

The served file is the recipe weights under PaddleSeg's names (tests/paddle_recipe.py), so the
downloaded model must reproduce ``paddleseg_mscale_golden.npz``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core
from hmsa_core.download import SHA_SUFFIX, fetch, main, sha256_of
from hmsa_core.pretrained import PRETRAINED, cached_file
from tests.loopback_server import LoopbackServer, Route, loopback_server
from tests.paddle_recipe import PADDLE_GOLDEN, recipe_pdparams

pytestmark = pytest.mark.slow

ENTRY = PRETRAINED["cityscapes"]
PATH = "/mirror/model.pdparams"
CUT = 100_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    source = recipe_pdparams(tmp_path_factory)
    with loopback_server({PATH: Route(path=source, cut_first_at=CUT)}) as running:
        yield running


@pytest.fixture(scope="module")
def downloaded(
    server: LoopbackServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[tuple[int, int | None]]]]:
    """Fetches once through an interrupted first response; returns the cache and the progress."""
    cache = tmp_path_factory.mktemp("cache")
    seen: list[tuple[int, int | None]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HMSA_CACHE_DIR", str(cache))
        patch.setenv("HMSA_MODELS_DIR", str(cache / "no-models"))
        patch.setenv("HMSA_URL_CITYSCAPES", server.url + PATH)
        patch.delenv("HMSA_OFFLINE", raising=False)
        fetch("cityscapes", progress=lambda done, total: seen.append((done, total)))
    yield cache, seen


def test_interrupted_download_resumes_and_is_cached_with_its_sha256(
    server: LoopbackServer, downloaded: tuple[Path, list], tmp_path_factory
) -> None:
    cache, seen = downloaded
    size = recipe_pdparams(tmp_path_factory).stat().st_size
    ranges = [r["range"] for r in server.requests_to(PATH)]
    assert ranges[0] is None and ranges[1] is not None and len(ranges) == 2
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) >= CUT - 2**20
    assert seen[-1] == (size, size)
    target = cached_file(ENTRY, cache)
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == [
        target.name,
        target.name + SHA_SUFFIX,
    ]
    stored = (cache / (target.name + SHA_SUFFIX)).read_text().split()[0]
    assert stored == sha256_of(target)


def test_cache_hit_with_offline_set_segments_like_paddleseg(
    downloaded: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, _ = downloaded
    monkeypatch.setenv("HMSA_CACHE_DIR", str(cache))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(cache / "no-models"))
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", "http://127.0.0.1:9/unreachable.pdparams")
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    model = hmsa_core.load_model("cityscapes", device="cpu")
    assert model.labels.name == "cityscapes"
    assert model.checkpoint_info.extra["format"] == "paddleseg"
    with np.load(PADDLE_GOLDEN) as golden:
        image, reference = golden["input"], golden["pred__0.5_1.0"]
    result = hmsa_core.infer(
        torch.from_numpy(image), (0.5, 1.0), model=model, cache=None, precision="fp32"
    )
    error = np.abs(result.logits.unsqueeze(0).numpy() - reference).max()
    assert error <= 1e-4 * np.abs(reference).max()


def test_corrupted_cache_is_downloaded_once_more(
    server: LoopbackServer, downloaded: tuple[Path, list], tmp_path: Path, monkeypatch
) -> None:
    cache, _ = downloaded
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    target = cached_file(ENTRY, copy)
    with target.open("r+b") as handle:  # flip one byte in the middle of the weights
        handle.seek(target.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("HMSA_CACHE_DIR", str(copy))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(copy / "no-models"))
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", server.url + PATH)
    monkeypatch.delenv("HMSA_OFFLINE", raising=False)
    before = len(server.requests_to(PATH))
    assert fetch("cityscapes") == target
    assert len(server.requests_to(PATH)) == before + 1  # one fresh download, not resumed
    assert server.requests_to(PATH)[-1]["range"] is None
    assert (copy / (target.name + SHA_SUFFIX)).read_text().split()[0] == sha256_of(target)
    assert fetch("cityscapes") == target  # intact now: no further request
    assert len(server.requests_to(PATH)) == before + 1


def test_command_line_prints_the_cached_file_without_downloading(
    downloaded: tuple[Path, list], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cache, _ = downloaded
    monkeypatch.setenv("HMSA_CACHE_DIR", str(cache))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(cache / "no-models"))
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    assert main(["cityscapes"]) == 0
    assert capsys.readouterr().out.strip() == str(cached_file(ENTRY, cache))
