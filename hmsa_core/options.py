"""How a cascade runs: one frozen settings object, validated in one place.

:class:`InferOptions` holds every setting that changes how the passes of a cascade run or
what they cost (precision, gate and its criterion, tile limits, flip, fast path, aux); the
pass plan (:mod:`hmsa_core.plan`) is computed from it, and both running and costing read
that plan. ``infer``'s keyword arguments build one; ``extend``, ``run_scales`` and the apps
pass it whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hmsa_core.fastpath import FastPathOptions
from hmsa_core.gating import GATE_CRITERIA, is_approximate
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.precision import PRECISION_CHOICES

__all__ = ["GATE_CRITERIA", "InferOptions", "check_for_model"]


@dataclass(frozen=True)
class InferOptions:
    """Settings of one cascade run; frozen, checked on construction.

    Attributes:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :mod:`hmsa_core.precision`).
        gate: gating threshold ``tau`` in ``[0, 1)``; 0 runs every pass whole (exact HMSA).
        gate_by: the gate criterion, one of :data:`GATE_CRITERIA` (DESIGN 1.8).
        flip: also run every scale on the mirrored image and average the two merges (DESIGN 1.6).
        limits: input, cascade and tile limits (tile budgets, overlap, gate tile).
        device: where :func:`hmsa_core.infer` loads its default model (``None``: CUDA when
            available); a given model runs where it is.
        fast_path: the opt-in GPU fast path (:mod:`hmsa_core.fastpath`), ``None``: eager.
        aux: keep the auxiliary OCR logits of models that have them.
    """

    precision: str = "auto"
    gate: float = 0.0
    gate_by: str = "bound"
    flip: bool = False
    limits: InputLimits = field(default=DEFAULT_LIMITS)
    device: str | None = None
    fast_path: FastPathOptions | None = None
    aux: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}"
            )
        try:
            tau = float(self.gate)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"gate must be a number in [0, 1), got {self.gate!r}") from exc
        if not 0.0 <= tau < 1.0:
            raise ValueError(f"gate must be in [0, 1) (0 turns gating off), got {self.gate!r}")
        object.__setattr__(self, "gate", tau)
        if self.gate_by not in GATE_CRITERIA:
            raise ValueError(
                f"gate_by must be one of {', '.join(GATE_CRITERIA)}, got {self.gate_by!r}"
            )
        if not isinstance(self.limits, InputLimits):
            raise ValueError(f"limits must be an InputLimits, got {type(self.limits).__name__}")
        object.__setattr__(self, "flip", bool(self.flip))
        object.__setattr__(self, "aux", bool(self.aux))

    @property
    def gated(self) -> bool:
        """Returns True when passes above the lowest scale are gated (``gate > 0``)."""
        return self.gate > 0

    @property
    def gate_approximate(self) -> bool:
        """Returns True when the passes are gated by a criterion without an error bound
        (``"attention"``, ``"confidence"``; DESIGN 1.8)."""
        return self.gated and is_approximate(self.gate_by)

    def with_changes(self, **changes: object) -> InferOptions:
        """Returns a copy with ``changes`` applied (and checked again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def check_for_model(
    options: InferOptions, has_attention: bool, arch: str, method: str | None
) -> None:
    """Raises ``ValueError`` when ``options`` cannot run with a model (``has_attention``,
    ``arch``) merged by ``method``: a gate needs a scale-attention head and the hierarchical
    merge (``method`` ``None``: the merge is not known yet, only the head is checked)."""
    if not options.gated:
        return
    if not has_attention:
        raise ValueError(
            f"gate={options.gate:g} needs a model with a scale-attention head; {arch} has none: "
            "use gate=0"
        )
    if method is not None and method != "hierarchical":
        raise ValueError(
            f"gate={options.gate:g} applies to the hierarchical merge only; use gate=0 with "
            f"{method!r}"
        )
