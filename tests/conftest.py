"""Shared pytest set-up: a reproducible hypothesis profile for CI.

With ``CI`` set (as the CI runner does), property tests draw the same examples on every run
(``derandomize``), so a red CI run always means a change, never a newly drawn input; local runs
keep exploring new random examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() not in ("", "0", "false"):
    settings.load_profile("ci")
