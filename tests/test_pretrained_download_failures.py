"""Downloading a pretrained model fails with one clear sentence, resumes, and can be cancelled.

Every test talks to a real HTTP server on 127.0.0.1 (tests/loopback_server.py) through
``HMSA_URL_CITYSCAPES``; the files served are small (the full-size success path is in
tests/test_pretrained_download_fullsize.py).
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

import hmsa_core
from hmsa_core.download import DownloadCancelled, DownloadError, fetch, main
from hmsa_core.pretrained import PRETRAINED, cached_file, menu_text
from tests.loopback_server import Route, loopback_server
from tests.paddle_recipe import PADDLE_EXAMPLE

ENTRY = PRETRAINED["cityscapes"]
PATH = "/model.pdparams"
#: 3 MiB that start like a protocol-4 pickle: transferred like a checkpoint, refused on parsing.
BLOB = b"\x80\x04" + np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    cache, models = tmp_path / "cache", tmp_path / "models"
    monkeypatch.setenv("HMSA_CACHE_DIR", str(cache))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(models))
    monkeypatch.delenv("HMSA_OFFLINE", raising=False)
    return {"cache": cache, "models": models}


def _point_at(server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", server_url + PATH)


def _nothing_installed(folders: dict[str, Path]) -> bool:
    cache = folders["cache"]
    return not cached_file(ENTRY, cache).exists() and not list(cache.glob("*.part"))


class _Payload:
    """A pickle whose ``__reduce__`` would create a marker file (it must never run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_html_page_instead_of_a_checkpoint(folders, monkeypatch) -> None:
    with loopback_server({PATH: Route(kind="html")}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match=r"web page \(HTML\), not a checkpoint"):
            fetch("cityscapes")
    assert _nothing_installed(folders)


def test_http_404_names_the_url_and_the_override(folders, monkeypatch) -> None:
    with loopback_server({}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match=r"HTTP 404.*HMSA_URL_CITYSCAPES") as info:
            fetch("cityscapes")
    assert server.url + PATH in str(info.value)


def test_no_network_names_the_url_and_where_to_put_the_file(folders, monkeypatch) -> None:
    with loopback_server({}) as server:
        url = server.url + PATH
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", url)  # the server is gone: connection refused
    with pytest.raises(DownloadError, match="cannot reach") as info:
        fetch("cityscapes", connect_timeout=2)
    message = str(info.value)
    assert url in message and str(folders["models"] / "cityscapes.pdparams") in message


def test_stalling_server_times_out_instead_of_hanging(folders, monkeypatch) -> None:
    with loopback_server({PATH: Route(kind="stall")}) as server:
        _point_at(server.url, monkeypatch)
        start = time.monotonic()
        with pytest.raises(DownloadError, match="stopped sending data"):
            fetch("cityscapes", read_timeout=0.5)
        assert time.monotonic() - start < 15


def test_truncated_file_is_refused_and_not_installed(folders, monkeypatch) -> None:
    truncated = PADDLE_EXAMPLE.read_bytes()[:600]
    with loopback_server({PATH: Route(body=truncated)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match="truncated"):
            fetch("cityscapes")
    assert _nothing_installed(folders)


def test_file_of_another_architecture_is_refused(folders, monkeypatch) -> None:
    """The genuine paddle.save file of a tiny Conv2D + BatchNorm2D is not MscaleOCRNet."""
    with loopback_server({PATH: Route(body=PADDLE_EXAMPLE.read_bytes())}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match="not a PaddleSeg MscaleOCRNet"):
            fetch("cityscapes")
    assert _nothing_installed(folders)


def test_pickle_that_tries_to_run_code_is_refused_and_never_runs(
    folders, monkeypatch, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({"ocrnet.head.cls_head.weight": _Payload(marker)}, protocol=4)
    with loopback_server({PATH: Route(body=hostile)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match=r"refused as unsafe.*system"):
            fetch("cityscapes")
    assert not marker.exists()
    assert _nothing_installed(folders)


def test_offline_without_a_cached_copy_makes_no_request(folders, monkeypatch) -> None:
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    with loopback_server({PATH: Route(body=BLOB)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match="HMSA_OFFLINE=1 forbids") as info:
            hmsa_core.load_model("cityscapes")
    assert server.log == []
    assert str(folders["models"] / "cityscapes.pdparams") in str(info.value)


def test_size_cap_stops_an_oversized_download(folders, monkeypatch) -> None:
    with loopback_server({PATH: Route(body=BLOB)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match="cap"):
            fetch("cityscapes", max_bytes=2**20)


def test_progress_is_reported_and_a_broken_transfer_resumes_with_range(
    folders, monkeypatch
) -> None:
    """The first response breaks off after 1.5 MiB; fetch resumes it with an HTTP Range request
    (the bytes are then refused on parsing, as they are no checkpoint)."""
    cut = 3 * 2**19
    seen: list[tuple[int, int | None]] = []
    with loopback_server({PATH: Route(body=BLOB, cut_first_at=cut)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match="cannot be used"):
            fetch("cityscapes", progress=lambda done, total: seen.append((done, total)))
        ranges = [r["range"] for r in server.requests_to(PATH)]
    assert ranges[0] is None and ranges[1] is not None
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) >= 2**20
    dones = [done for done, _ in seen]
    assert dones == sorted(dones) and dones[-1] == len(BLOB)
    assert {total for _, total in seen} == {len(BLOB)}


def test_cancelled_download_keeps_its_part_and_the_next_fetch_resumes(folders, monkeypatch) -> None:
    def cancel_after_first_chunk(done: int, total: int | None) -> None:
        raise DownloadCancelled("user pressed cancel")

    with loopback_server({PATH: Route(body=BLOB)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadCancelled):
            fetch("cityscapes", progress=cancel_after_first_chunk)
        part = folders["cache"] / "cityscapes.pdparams.part"
        kept = part.stat().st_size
        assert 0 < kept < len(BLOB)
        with pytest.raises(DownloadError, match="cannot be used"):
            fetch("cityscapes")
        assert server.requests_to(PATH)[-1]["range"] == f"bytes={kept}-"


def test_command_line_reports_a_failure_in_one_line(folders, monkeypatch, capsys) -> None:
    with loopback_server({PATH: Route(kind="html")}) as server:
        _point_at(server.url, monkeypatch)
        assert main(["cityscapes", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "HTML" in err[0]


def test_menu_text_tells_what_the_download_costs(folders) -> None:
    assert menu_text(ENTRY) == (
        "cityscapes: HRNet-W48 + OCR + HMSA, 86.9 mIoU Cityscapes val, about 290 MB, "
        "not downloaded yet"
    )


def test_a_file_of_that_name_in_the_models_folder_comes_first(folders, monkeypatch) -> None:
    """No request, no cache: the hand-placed file is used (here the tiny genuine paddle file,
    which then fails the architecture check, naming it)."""
    folders["models"].mkdir()
    (folders["models"] / "cityscapes.pdparams").write_bytes(PADDLE_EXAMPLE.read_bytes())
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    assert fetch("cityscapes") == folders["models"] / "cityscapes.pdparams"
    with pytest.raises(ValueError, match=r"cityscapes\.pdparams is not a PaddleSeg MscaleOCRNet"):
        hmsa_core.load_model("cityscapes")
    assert not folders["cache"].exists()


def test_an_unwritable_cache_folder_names_the_variable_to_set(
    folders, monkeypatch, tmp_path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"not a folder")
    monkeypatch.setenv("HMSA_CACHE_DIR", str(blocker))
    with loopback_server({PATH: Route(body=BLOB)}) as server:
        _point_at(server.url, monkeypatch)
        with pytest.raises(DownloadError, match=r"cannot write.*HMSA_CACHE_DIR"):
            fetch("cityscapes")
