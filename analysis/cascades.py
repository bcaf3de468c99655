"""Cascades as data: subsets, parsing, formatting and expanding merge methods over them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from hmsa_core.cascade import parse_scales, validate_scales

Cascade = tuple[float, ...]


def all_subsets(scales: Iterable[float]) -> list[Cascade]:
    """Returns every non-empty subset of ``scales``, each an ascending tuple.

    Duplicates are removed first; the list holds ``2**n - 1`` cascades, ordered by size, then
    lexicographically (e.g. ``(0.5,), (1.0,), (0.5, 1.0)``).
    """
    unique = sorted({float(s) for s in scales})
    return [
        tuple(combo)
        for size in range(1, len(unique) + 1)
        for combo in itertools.combinations(unique, size)
    ]


def parse_cascades(text: str) -> tuple[Cascade, ...]:
    """Returns the cascades of a ``;``-separated list such as ``"0.5,1;0.5,1,2"``.

    Each cascade is validated (ascending, duplicates removed); repeated cascades are kept once,
    in first-seen order.

    Raises:
        ValueError: an empty list, an empty cascade or a bad scale, naming it.
    """
    parts = [p.strip() for p in text.split(";")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError("no cascades given; write e.g. '0.5,1;0.5,1,2;0.25,0.5,1,2'")
    cascades: list[Cascade] = []
    for part in parts:
        cascade = validate_scales(parse_scales(part))
        if cascade not in cascades:
            cascades.append(cascade)
    return tuple(cascades)


def union_scales(cascades: Iterable[Sequence[float]]) -> Cascade:
    """Returns the ascending union of the scales of every cascade."""
    return tuple(sorted({float(s) for cascade in cascades for s in cascade}))


def format_scale(scale: float) -> str:
    """Returns a scale written shortly, e.g. ``0.5``, ``1``, ``0.25``."""
    return f"{scale:g}"


def format_cascade(cascade: Sequence[float], sep: str = ",") -> str:
    """Returns a cascade written as ``"0.5,1,2"`` (the CSV and CLI form)."""
    return sep.join(format_scale(s) for s in cascade)


def parse_cascade(text: str) -> Cascade:
    """Returns the cascade of a text such as ``"0.5,1,2"`` (inverse of :func:`format_cascade`)."""
    return validate_scales(parse_scales(text))


def sweep_methods(cascade: Sequence[float], methods: Iterable[str]) -> tuple[str, ...]:
    """Returns the merges a sweep runs on ``cascade``: :func:`expand_methods`, except that a
    one-scale cascade gets the one ``"single:<s>"`` (every merge of one scale is that scale's
    own prediction, so it is scored and shown once)."""
    if len(cascade) == 1:
        return (f"single:{format_scale(cascade[0])}",)
    return expand_methods(cascade, methods)


def row_label(cascade: Sequence[float], method: str) -> str:
    """Returns how tables and charts name a (cascade, method): ``"single 0.5"`` for a
    one-scale cascade (``"single 0.5 + flip"`` for the method label ``"mean + flip"``),
    ``"hierarchical (0.5, 1, 2)"`` otherwise."""
    if len(cascade) == 1:  # any merge of one scale is it; keep what follows, e.g. " + flip"
        extra = method[method.index(" ") :] if " " in method else ""
        return f"single {format_scale(cascade[0])}{extra}"
    return f"{method} ({format_cascade(cascade, ', ')})"


def expand_methods(cascade: Sequence[float], methods: Iterable[str]) -> tuple[str, ...]:
    """Returns the merge methods to run on ``cascade``: ``"single"`` becomes ``"single:<s>"`` for
    each of its scales; other names are kept; duplicates are dropped, order kept."""
    expanded: list[str] = []
    for method in methods:
        names = [f"single:{format_scale(s)}" for s in cascade] if method == "single" else [method]
        for name in names:
            if name not in expanded:
                expanded.append(name)
    return tuple(expanded)
