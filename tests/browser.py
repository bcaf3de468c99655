"""Shared set-up of the browser and server tests: Debian's chromium driven by playwright,
free loopback ports, a Streamlit server, random test images.

A browser test calls :func:`chromium_or_skip` (and :func:`playwright_or_skip`) first. Without
chromium or playwright the test is skipped, unless the environment sets
``HMSA_REQUIRE_BROWSER=1`` (CI does): then it fails, so a missing browser cannot pass silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where Debian's ``chromium`` package installs the browser.
CHROMIUM = "/usr/bin/chromium"
#: Environment variable that turns a missing browser from a skip into a failure.
REQUIRE_ENV = "HMSA_REQUIRE_BROWSER"
#: Flags for a headless, offline chromium run as root in a container.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def browser_required() -> bool:
    """Returns True when env ``HMSA_REQUIRE_BROWSER`` is ``1`` (a missing browser must fail)."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def skip_or_fail(reason: str) -> None:
    """Skips the calling test with ``reason``, or fails it when :func:`browser_required`.

    Never returns: raises pytest's skip or fail outcome.
    """
    if browser_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires the browser tests to run)")
    pytest.skip(reason)


def chromium_or_skip(path: str = CHROMIUM) -> str:
    """Returns the path of the chromium executable at ``path`` (default Debian's), for
    playwright's ``executable_path``; skips the test when it is missing, or fails it when
    ``HMSA_REQUIRE_BROWSER=1``."""
    found = Path(path)
    if not found.is_file() or shutil.which(str(found)) is None:
        skip_or_fail(f"chromium is not installed at {path} (apt-get install chromium)")
    return str(found)


def playwright_or_skip() -> ModuleType:
    """Returns the ``playwright.sync_api`` module; skips the test when playwright is not
    installed, or fails it when ``HMSA_REQUIRE_BROWSER=1``."""
    try:
        import playwright.sync_api as sync_api
    except ImportError as exc:
        skip_or_fail(f"playwright is not installed ({exc})")
        raise  # unreachable: skip_or_fail always raises
    return sync_api


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen, deadline_s: float = 60.0) -> None:
    """Returns once Streamlit at ``url`` answers its health check; raises if it exits or stalls."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


def explorer_env(
    folder: Path, count: int = 1, size: tuple[int, int] = (64, 128), **extra: str
) -> dict[str, str]:
    """Returns this process's environment plus the explorer's settings for a test: ``count``
    SynthScapes samples of ``size`` written to ``folder/samples`` (``HMSA_SAMPLES_DIR``), the
    empty ``folder/models`` (``HMSA_MODELS_DIR``), and ``extra``."""
    from hmsa_core.data.synthscapes import write_samples

    samples = folder / "samples"
    write_samples(samples, count=count, size=size)
    return dict(
        os.environ, HMSA_SAMPLES_DIR=str(samples), HMSA_MODELS_DIR=str(folder / "models"), **extra
    )


#: URL prefixes a test page may load: the app on loopback and inline data.
LOCAL_URLS = ("http://127.0.0.1", "data:", "blob:")


@contextlib.contextmanager
def local_page(
    playwright_api: ModuleType,
    chromium: str,
    outside: list[str] | None = None,
    size: tuple[int, int] = (1400, 1000),
) -> Iterator[Any]:
    """Yields a new chromium page of ``size`` = ``(width, height)`` through ``playwright_api``
    (``playwright.sync_api``); with ``outside``, the URL of every request outside
    :data:`LOCAL_URLS` is appended to it. Closes the browser afterwards."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            if outside is not None:
                page.on(
                    "request",
                    lambda r: None if r.url.startswith(LOCAL_URLS) else outside.append(r.url),
                )
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def streamlit_explorer(env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """Runs ``streamlit run app/explorer.py`` on 127.0.0.1 with ``env``; yields its URL and
    stops the server afterwards (its output goes to ``log_dir/server.log``)."""
    port = free_port()
    full_env = dict(env, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    with (log_dir / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app/explorer.py",
                "--server.headless", "true",
                "--server.port", str(port),
                "--server.address", "127.0.0.1",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def noise_images(
    folder: Path, count: int, size: tuple[int, int], *, seed: int = 0, prefix: str = "noise"
) -> list[Path]:
    """Returns ``count`` distinct random RGB PNGs of ``size`` (H, W) written to ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def click_download(page: Any, button: Any, path: Path, timeout_ms: float) -> Path:
    """Clicks ``button`` on ``page`` (playwright objects), saves the download it starts to
    ``path`` and returns ``path``."""
    with page.expect_download(timeout=timeout_ms) as download:
        button.click()
    download.value.save_as(path)
    return path
