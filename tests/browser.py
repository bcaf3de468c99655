"""Shared set-up of the browser tests: Debian's chromium driven by playwright.

A browser test calls :func:`chromium_or_skip` (and :func:`playwright_or_skip`) first. Without
chromium or playwright the test is skipped, unless the environment sets
``HMSA_REQUIRE_BROWSER=1`` (CI does): then it fails, so a missing browser cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

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
