"""Shared pytest set-up: a reproducible hypothesis profile for CI, and the ``model``,
``lite`` and ``chromium`` fixtures.

With ``CI`` set (as the CI runner does), property tests draw the same examples on every run
(``derandomize``), so a red CI run always means a change, never a newly drawn input; local runs
keep exploring new random examples.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from hmsa_core.models.base import MultiScaleSegmenter
from tests.tiny_models import seeded_lite

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() not in ("", "0", "false"):
    settings.load_profile("ci")


@pytest.fixture
def chromium() -> str:
    """Returns the chromium executable for playwright; skips without it or without playwright
    (fails instead when ``HMSA_REQUIRE_BROWSER=1``, see tests/browser.py)."""
    from tests.browser import chromium_or_skip, playwright_or_skip

    playwright_or_skip()
    return chromium_or_skip()


@pytest.fixture(scope="module")
def model() -> MultiScaleSegmenter:
    """An eval-mode untrained ``lite`` model (19 classes) built after ``torch.manual_seed(0)``,
    one per test module (:func:`tests.tiny_models.seeded_lite`); a module that needs another
    model defines its own ``model`` fixture."""
    return seeded_lite()


@pytest.fixture(scope="module")
def lite() -> MultiScaleSegmenter:
    """The bundled, trained ``hmsa-lite`` model on the CPU, loaded once per test module."""
    import hmsa_core

    return hmsa_core.load_model("hmsa-lite", "cpu")
