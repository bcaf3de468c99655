"""The result a page shows, held per browser session so the overlay can be redrawn without a run.

A run returns a :class:`HeldResult` (input image, merged prediction, label set) into a
``gr.State``; the per-class toggles redraw the before/after slider and the annotated overlay
from it (:func:`show_classes`): no forward pass, no merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr
import numpy as np

from app.gradio_parts.views import AnnotatedValue, SliderValue, annotated_layers, slider_value
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet


@dataclass(frozen=True)
class HeldResult:
    """What the overlay views need of a run.

    Attributes:
        image: ``(H, W, 3)`` uint8 input as the model saw it.
        pred: ``(H, W)`` int16 merged class ids.
        labels: the model's label set (names and colours).
    """

    image: np.ndarray
    pred: np.ndarray
    labels: LabelSet

    @classmethod
    def of(cls, result: InferenceResult) -> HeldResult:
        """Returns the held part of an inference result (the prediction as int16, a quarter of
        the int64 tensor's memory)."""
        pred = result.pred.detach().cpu().numpy().astype(np.int16)
        return cls(np.ascontiguousarray(result.image, dtype=np.uint8), pred, result.labels)


def show_classes(
    held: HeldResult | None, visible: Sequence[int] | None
) -> tuple[SliderValue, AnnotatedValue]:
    """Returns ``(before/after slider value, annotated overlay value)`` of the held result with
    only the classes in ``visible`` coloured (an empty selection shows the bare image twice).

    Raises:
        gr.Error: nothing is held (the session expired or nothing ran yet), with what to do.
    """
    if not isinstance(held, HeldResult):
        raise gr.Error(
            "no result to redraw in this session; press Segment or click a sample",
            print_exception=False,
        )
    chosen = [int(v) for v in visible or ()]
    return (
        slider_value(held.image, held.pred, held.labels, chosen),
        annotated_layers(held.image, held.pred, held.labels, chosen),
    )
