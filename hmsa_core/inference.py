"""The old home of the inference pieces, kept so their import paths keep working.

The work is split by job: result types in :mod:`hmsa_core.results`, input preparation in
:mod:`hmsa_core.prepare`, the pass plan (tiling, alignment, precision, estimated cost) in
:mod:`hmsa_core.plan`, running the passes in :mod:`hmsa_core.passes` and the gated pass in
:mod:`hmsa_core.gated_pass`. :func:`hmsa_core.infer` (in :mod:`hmsa_core.api`) prepares the
image, runs the passes and merges them.
"""

from __future__ import annotations

from hmsa_core.passes import (
    DEFAULT_CACHE_BYTES,
    CacheEntry,
    ProgressFn,
    extend_result,
    infer_prepared,
    run_plan,
    run_scales,
)
from hmsa_core.plan import WHOLE_PASS_SHARE, can_tile, model_device, tile_alignment
from hmsa_core.prepare import PreparedInput, prepare_input
from hmsa_core.results import InferenceResult, PassOutcome, ScaleResult
from hmsa_core.results import assemble as _assemble

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "WHOLE_PASS_SHARE",
    "CacheEntry",
    "InferenceResult",
    "PassOutcome",
    "PreparedInput",
    "ProgressFn",
    "ScaleResult",
    "_assemble",
    "can_tile",
    "extend_result",
    "infer_prepared",
    "model_device",
    "prepare_input",
    "run_plan",
    "run_scales",
    "tile_alignment",
]
