"""The gated pass (DESIGN 1.5, 1.8): a scale run only on the tiles its gate criterion keeps,
the rest filled from the lower scales' merge (see :mod:`hmsa_core.gating` for the criteria and
the bound). For a model that states its context margin (the lite models) the kept tiles run
as rectangles with that margin around them, windows of one size stacked into one batch
(:func:`hmsa_core.tiling.run_batched`), their cores pasted; for others (HRNet-OCR, global
context) as windows grown by the tile overlap and blended, like a tiled pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

from hmsa_core.gating import combine as gating_combine
from hmsa_core.gating import fill_output as gating_fill
from hmsa_core.gating import needed_tiles_by, rectangle_cores, tile_rectangles
from hmsa_core.models.base import ScaleOutput
from hmsa_core.plan import CascadePlan, PassPlan
from hmsa_core.results import PassOutcome, to_float32
from hmsa_core.tiling import Box, Window, run_batched, run_windows


class Runner(Protocol):
    """What a gated pass needs of the plan's :class:`~hmsa_core.passes.PassRunner`."""

    plan: CascadePlan

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns the output of one run on ``x``."""
        ...

    def timed(self, work: Callable[[], ScaleOutput]) -> tuple[ScaleOutput, float, int | None]:
        """Returns ``(output, seconds, cuda_peak_bytes or None)`` of running ``work``."""
        ...

    def run_planned(self, x: torch.Tensor, p: PassPlan, extra_seconds: float = 0.0) -> PassOutcome:
        """Returns the outcome of pass ``p`` run as planned."""
        ...


def needed_for(plan: CascadePlan, p: PassPlan, lower: Mapping[float, ScaleOutput]) -> torch.Tensor:
    """Returns the ``(ny, nx)`` bool tiles (of ``options.limits.gate_tile`` pixels) of pass
    ``p`` that the gate criterion ``options.gate_by`` keeps, from the ``lower`` scales'
    outputs in the pass's own frame.

    Raises:
        ValueError: a lower scale without an attention map.
    """
    options = plan.options
    return needed_tiles_by(
        options.gate_by,
        lower,
        p.input_size,
        len(plan.scales),
        options.limits.gate_tile,
        options.gate,
    )


def uncovered_boxes(cores: Sequence[Box], size: tuple[int, int], tile: int) -> list[Box]:
    """Returns pixel boxes ``(top, bottom, left, right)``, whole ``tile``-pixel tiles clipped to
    ``size``, that hold every pixel of ``size`` outside the ``cores``: the pixels a gated pass
    must fill, the cores being pasted over the rest."""
    ny, nx = -(-size[0] // tile), -(-size[1] // tile)
    covered = np.ones((ny * tile, nx * tile), dtype=bool)  # the padding counts as covered
    covered[: size[0], : size[1]] = False
    for top, bottom, left, right in cores:
        covered[top:bottom, left:right] = True
    open_tiles = torch.from_numpy(~covered.reshape(ny, tile, nx, tile).all(axis=(1, 3)))
    if not bool(open_tiles.any()):
        return []
    return rectangle_cores(tile_rectangles(open_tiles), tile, size)


#: Largest share of a gated pass the fill may cover and still be resized box by box: a box
#: costs about 1.3 to 1.5 times the whole resize per pixel on the project's CPU (a crop, a
#: copy), so above about half of the pass resizing the whole map is cheaper.
BOXED_FILL_MAX_SHARE = 0.5


def _fill_boxes(plan: CascadePlan, p: PassPlan, windows: Sequence[Window]) -> list[Box] | None:
    """Returns the boxes of pass ``p`` its pasted window cores leave to the fill, or ``None``
    (fill the whole pass) when they cover more than :data:`BOXED_FILL_MAX_SHARE` of it."""
    boxes = uncovered_boxes([w.core for w in windows], p.input_size, plan.options.limits.gate_tile)
    area = sum((b - t) * (r - left) for t, b, left, r in boxes)
    if area > BOXED_FILL_MAX_SHARE * p.input_size[0] * p.input_size[1]:
        return None
    return boxes


def run_gated(
    runner: Runner, x: torch.Tensor, p: PassPlan, lower: Mapping[float, ScaleOutput]
) -> PassOutcome:
    """Returns the :class:`PassOutcome` of gated pass ``p`` on its input ``x``: run only in the
    windows :meth:`~hmsa_core.plan.CascadePlan.gated_windows` gives for the tiles the gate
    keeps (:func:`needed_for`), batched by size within the tile budget; elsewhere logits hold
    the ``lower`` scales' merge and attention 1. When the plan says the windows would cost as
    much, the pass runs as planned.
    """
    plan = runner.plan
    start = time.perf_counter()
    windows = plan.gated_windows(p, needed_for(plan, p, lower))
    gate_seconds = time.perf_counter() - start
    if windows is None:
        return runner.run_planned(x, p, extra_seconds=gate_seconds)
    covered = torch.zeros(p.input_size, dtype=torch.bool, device=x.device)

    def work() -> ScaleOutput:
        nonlocal covered
        if not windows:
            return gating_fill(lower, p.input_size)
        if plan.margin is None:  # no stated context: blended windows, as a tiled pass
            overlap = plan.options.limits.tile_overlap
            blended = run_windows(runner.forward, x, windows, overlap)
            covered = blended.covered
            return gating_combine(blended.output, blended.covered, gating_fill(lower, p.input_size))
        # only the pixels no core is pasted over are filled (the same values, fewer resized)
        fill = gating_fill(lower, p.input_size, _fill_boxes(plan, p, windows))
        budget = plan.options.limits.tile_pixels(plan.device_type)
        blended = run_batched(runner.forward, x, windows, budget, into=fill)  # pastes in place
        covered = blended.covered
        return blended.output

    output, seconds, cuda_peak = runner.timed(work)
    fraction = float(covered.float().mean())
    cost = plan.pass_cost(p, windows, seconds + gate_seconds, cuda_peak, fraction)
    return PassOutcome(to_float32(output), cost, covered.cpu(), windows)
