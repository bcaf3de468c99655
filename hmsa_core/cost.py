"""Compute cost of forward passes: counted FLOPs, wall seconds and peak memory.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on a *meta-device*
replica of the model: no arithmetic runs, so the cost of a cascade is known before it is run.
The same meta run estimates peak activation memory on CPU (see :class:`LiveBytesMode`); on CUDA
the allocator's measured peak is used instead.

The records live in :mod:`hmsa_core.cost_types`, the counting in :mod:`hmsa_core.counting`
(one traced formula per model, see :mod:`hmsa_core.pass_formula`); a cascade's expected cost
is read from its pass plan (:mod:`hmsa_core.plan`), the plan the passes run by.
"""

from __future__ import annotations

import torch

from hmsa_core.cost_types import ACTIVATION_SHARE, CascadeCost, PassEstimate, ScaleCost
from hmsa_core.counting import (
    LiveBytesMode,
    _meta_replica,
    count_pass,
    estimate_pass,
    param_bytes,
)
from hmsa_core.limits import InputLimits
from hmsa_core.options import InferOptions
from hmsa_core.plan import WHOLE_PASS_LIMITS, plan_cascade

__all__ = [
    "ACTIVATION_SHARE",
    "CascadeCost",
    "LiveBytesMode",
    "PassEstimate",
    "ScaleCost",
    "_meta_replica",
    "count_pass",
    "estimate_cascade",
    "estimate_pass",
    "param_bytes",
]


def estimate_cascade(
    model: torch.nn.Module,
    image_size: tuple[int, int],
    scales: tuple[float, ...],
    *,
    precision: str = "fp32",
    limits: InputLimits | None = None,
    options: InferOptions | None = None,
) -> CascadeCost:
    """Returns the expected :class:`CascadeCost` of a cascade before running it (``seconds`` = 0),
    read from its pass plan (:func:`hmsa_core.plan.plan_cascade`), so it counts exactly the
    passes and windows a run would.

    Args:
        model: the segmenter.
        image_size: ``(H, W)`` of the 1.0 input.
        scales: the cascade.
        precision: the precision the passes will run in (``"auto"`` is resolved for the
            model's device); reduced precision halves the activation estimate.
        limits: with the tile budget of the model's device (``max_tile_pixels``, or
            ``cuda_max_tile_pixels`` on CUDA): passes above it are planned in tiles, whose FLOPs
            (overlaps included) and largest tile's activations are reported. ``None``: whole
            passes.
        options: the run's :class:`~hmsa_core.options.InferOptions` instead of ``precision``
            and ``limits`` (a flip doubles the passes; gated passes count at their most).
    """
    if options is None:
        options = InferOptions(precision=precision, limits=limits or WHOLE_PASS_LIMITS)
    return plan_cascade(model, image_size, scales, options).cost()
