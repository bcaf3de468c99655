"""Cost records: what a pass or a cascade costs (FLOPs, seconds, peak memory), estimated or
measured. See :mod:`hmsa_core.cost`."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Share of the float32 activation estimate a pass holds in each precision it can run in
#: (reduced-precision activations take 2 bytes instead of 4; an estimate, see README).
ACTIVATION_SHARE = {"fp32": 1.0, "bf16": 0.5, "fp16": 0.5}


@dataclass(frozen=True)
class PassEstimate:
    """Cost of one forward pass known ahead of running it.

    Attributes:
        flops: floating-point operations (a multiply-add counts 2), counted by FlopCounterMode.
        activation_bytes: estimated peak bytes of live activations during the pass (meta run).
        param_bytes: bytes of the model's parameters and buffers.
    """

    flops: int
    activation_bytes: int
    param_bytes: int


@dataclass(frozen=True)
class ScaleCost:
    """Cost of one scale's forward pass.

    Attributes:
        scale: the scale.
        input_size: ``(h, w)`` of that scale's input.
        flops: counted FLOPs (0 never occurs for a real pass).
        seconds: measured wall time of the pass (synchronised on CUDA); when ``cached`` it is
            the time of the original pass, and no time was spent now.
        peak_bytes: the pass's peak memory plus the model's parameters, not counting what
            else is held (earlier scales' outputs, other models). CUDA: the allocator's peak
            during the pass above what was allocated before it; CPU: the meta-run estimate of
            peak live activations (best effort, see README).
        peak_measured: True when ``peak_bytes`` is a measurement (CUDA), False for the estimate.
        cached: True when the result came from the per-scale cache.
        precision: the precision the pass actually ran in: ``"fp32"``, ``"bf16"`` or ``"fp16"``
            (``"auto"`` is resolved before the pass runs).
        computed_fraction: fraction of the pass's input area actually computed, in ``[0, 1]``
            (below 1 when attention gating skipped tiles).
        flops_saved: FLOPs not spent because of gating; ``flops`` counts only what was spent.
        flipped: True for the pass on the mirrored image (DESIGN 1.6).
        gate: the gate threshold of a gated pass (0: the pass was not gated).
        gate_by: the gate criterion of a gated pass (``"bound"``, ``"attention"``,
            ``"confidence"``; empty when not gated).
    """

    scale: float
    input_size: tuple[int, int]
    flops: int
    seconds: float
    peak_bytes: int
    peak_measured: bool = False
    cached: bool = False
    precision: str = "fp32"
    computed_fraction: float = 1.0
    flops_saved: int = 0
    flipped: bool = False
    gate: float = 0.0
    gate_by: str = ""

    @property
    def gflops(self) -> float:
        """Returns the FLOPs in units of 1e9."""
        return self.flops / 1e9

    @property
    def skipped_fraction(self) -> float:
        """Returns the share of the pass's input area gating skipped (``1 - computed_fraction``)."""
        return 1.0 - self.computed_fraction


@dataclass(frozen=True)
class CascadeCost:
    """Cost of a whole cascade: the sum over scales (peak memory: the maximum).

    Attributes:
        per_scale: the :class:`ScaleCost` of each pass, ascending by scale; with flip, each
            scale's mirrored pass (``flipped``) follows it.
    """

    per_scale: tuple[ScaleCost, ...] = field(default_factory=tuple)

    @property
    def flops(self) -> int:
        """Returns the total FLOPs of every scale's pass."""
        return sum(c.flops for c in self.per_scale)

    @property
    def gflops(self) -> float:
        """Returns the total FLOPs in units of 1e9."""
        return self.flops / 1e9

    @property
    def seconds(self) -> float:
        """Returns the seconds spent now: passes served from the cache count 0."""
        return sum(c.seconds for c in self.per_scale if not c.cached)

    @property
    def compute_seconds(self) -> float:
        """Returns the seconds every pass took when it was computed, cached ones included."""
        return sum(c.seconds for c in self.per_scale)

    @property
    def peak_bytes(self) -> int:
        """Returns the largest peak of any one pass (passes run one after the other)."""
        return max((c.peak_bytes for c in self.per_scale), default=0)

    @property
    def flops_saved(self) -> int:
        """Returns the total FLOPs that gating skipped (0 for an ungated cascade)."""
        return sum(c.flops_saved for c in self.per_scale)

    @property
    def gflops_saved(self) -> float:
        """Returns the FLOPs gating skipped in units of 1e9."""
        return self.flops_saved / 1e9

    @property
    def full_flops(self) -> int:
        """Returns the FLOPs the cascade would cost ungated: spent plus saved."""
        return self.flops + self.flops_saved

    @property
    def gate_by(self) -> str:
        """Returns the gate criterion of the gated passes (empty when none was gated)."""
        return next((c.gate_by for c in self.per_scale if c.gate_by), "")

    @property
    def gate(self) -> float:
        """Returns the gate threshold of the gated passes (0 when none was gated)."""
        return next((c.gate for c in self.per_scale if c.gate_by), 0.0)

    @property
    def precisions(self) -> tuple[str, ...]:
        """Returns the distinct precisions the passes ran in, ascending by first scale."""
        return tuple(dict.fromkeys(c.precision for c in self.per_scale))

    @property
    def cached_scales(self) -> tuple[float, ...]:
        """Returns the scales served from the cache (once each, flipped passes included)."""
        return tuple(dict.fromkeys(c.scale for c in self.per_scale if c.cached))

    def __repr__(self) -> str:
        """Returns one readable line: scales, GFLOPs, seconds, peak memory, cached scales."""
        from hmsa_core.display import cost_summary

        return cost_summary(self)

    def _repr_html_(self) -> str:
        """Returns the notebook display: one table row per scale."""
        from hmsa_core.display import cost_html

        return cost_html(self)
