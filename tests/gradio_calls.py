"""Calling the Gradio page's own endpoints (``/analyse``, ``/arrays``, ``/memory_estimate``)
from a test: their positional inputs are the page's controls, in the order of
:data:`app.gradio_parts.handlers.PAGE_FIELDS` (a subset for the estimate), so a test names the
values it cares about and the rest keep the :class:`~app.gradio_parts.handlers.PageRequest`
defaults, whatever controls the page gains."""

from __future__ import annotations

from collections.abc import Sequence

from app.gradio_parts.handlers import ESTIMATE_FIELDS, PAGE_FIELDS, PageRequest


def page_inputs(names: Sequence[str] = PAGE_FIELDS, **values: object) -> list[object]:
    """Returns the positional inputs of an endpoint taking the request fields ``names``:
    ``values`` where given, else the :class:`PageRequest` default (tuples as lists)."""
    request = PageRequest(**values)  # type: ignore[arg-type]
    out = [getattr(request, name) for name in names]
    return [list(v) if isinstance(v, tuple) else v for v in out]


def estimate_inputs(**values: object) -> list[object]:
    """Returns the positional inputs of ``/memory_estimate`` (:data:`ESTIMATE_FIELDS`)."""
    return page_inputs(ESTIMATE_FIELDS, **values)
