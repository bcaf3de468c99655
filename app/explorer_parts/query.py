"""Shareable explorer views: the URL query (``?model=...&image=...&cascade=...&gate=0.3&
gate_by=attention&flip=1``) as data.

Pure functions, no Streamlit: :func:`parse_view` turns query parameters into a
:class:`SharedView` plus a notice for every value it had to drop (unknown model or sample,
malformed cascade, unknown method, gate criterion or tab, a gate out of the slider's range,
over-long or repeated values); :func:`to_params` is
the inverse; :func:`widget_values` maps a view onto the explorer's widget keys. Query values
come from whoever wrote the link: they are only compared with known names and parsed as
numbers, never used as paths or code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from hmsa_core.cascade import parse_scales, validate_scales
from hmsa_core.gating import GATE_CRITERIA
from hmsa_core.limits import InputLimits
from hmsa_core.merge import parse_method

T = TypeVar("T")

PARAM_MODEL = "model"
PARAM_IMAGE = "image"
PARAM_CASCADE = "cascade"
PARAM_METHOD = "method"
PARAM_TAB = "tab"
PARAM_FLIP = "flip"
PARAM_GATE = "gate"
PARAM_GATE_BY = "gate_by"
#: The query parameters a view is made of, in URL order.
PARAMS: tuple[str, ...] = (
    PARAM_MODEL,
    PARAM_IMAGE,
    PARAM_CASCADE,
    PARAM_METHOD,
    PARAM_GATE,
    PARAM_GATE_BY,
    PARAM_FLIP,
    PARAM_TAB,
)
#: Query values of the flip switch: on and off.
FLIP_ON, FLIP_OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: The largest attention gate the explorer's slider offers (and a link may set).
MAX_GATE = 0.5
#: The gate slider's step: a linked gate is rounded to it.
GATE_STEP = 0.01
#: The gate criterion a link leaves out (the engine's default).
DEFAULT_GATE_BY = "bound"
#: Longest query value considered; longer ones are dropped with a notice.
MAX_VALUE_CHARS = 200

#: Widget keys of the explorer's sidebar and tabs that a view sets.
KEY_MODEL = "model_name"
KEY_SOURCE = "image_source"
KEY_SAMPLE = "sample_name"
KEY_PILLS = "scale_pills"
KEY_EXTRA = "extra_scales"
KEY_METHOD = "method"
KEY_FLIP = "flip"
KEY_GATE = "gate"
KEY_GATE_BY = "gate_by"


@dataclass(frozen=True)
class SharedView:
    """What a link restores; ``None`` leaves that choice at its default.

    Attributes:
        model: a model menu name.
        image: a bundled sample's name (file stem).
        cascade: the scales, ascending.
        method: a merge method (``hierarchical``, ``mean``, ``max``, ``explicit``,
            ``single:<s>``).
        tab: a result tab's label.
        flip: whether the passes also run on the mirrored image (flip testing).
        gate: the attention-gate threshold, 0 to :data:`MAX_GATE` (0: every pass runs whole).
        gate_by: the gate criterion, one of :data:`hmsa_core.gating.GATE_CRITERIA`.
    """

    model: str | None = None
    image: str | None = None
    cascade: tuple[float, ...] | None = None
    method: str | None = None
    tab: str | None = None
    flip: bool | None = None
    gate: float | None = None
    gate_by: str | None = None


@dataclass(frozen=True)
class KnownNames:
    """The values a link may name right now.

    Attributes:
        models: model menu names.
        samples: bundled sample names.
        tabs: result tab labels.
        limits: cascade limits (number of scales, scale range).
    """

    models: tuple[str, ...]
    samples: tuple[str, ...]
    tabs: tuple[str, ...]
    limits: InputLimits


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _single(name: str, value: object, notices: list[str]) -> str | None:
    """Returns the one string value of a parameter, or ``None`` (with a notice) when it is
    repeated, not text, empty or too long."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            notices.append(f"Link parameter {name!r} was given {len(value)} times; ignored.")
            return None
        value = value[0]
    if not isinstance(value, str):
        notices.append(f"Link parameter {name!r} is not text; ignored.")
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_VALUE_CHARS or not value.isprintable():
        notices.append(f"Link parameter {name!r} is too long or not printable; ignored.")
        return None
    return value


def _one_of(name: str, value: str | None, known: Sequence[str], notices: list[str]) -> str | None:
    if value is None:
        return None
    if value in known:
        return value
    notices.append(f"Unknown {name} {_shown(value)} in the link; using the default.")
    return None


def parse_cascade_value(value: str, limits: InputLimits) -> tuple[float, ...]:
    """Returns the ascending cascade of a query value such as ``"0.5,1,2"``.

    Raises:
        ValueError: a token that is not a number, an empty cascade, a scale out of range or
            more scales than ``limits`` allow.
    """
    return validate_scales(parse_scales(value), None, 1, limits)


def parse_method_value(value: str) -> str:
    """Returns the canonical merge method of a query value (``single:2.0`` -> ``single:2``).

    Raises:
        ValueError: not a merge method.
    """
    kind, scale = parse_method(value)
    if kind != "single" or scale is None:
        return kind
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"single-scale method needs a positive scale, got {scale}")
    return f"single:{scale:g}"


def parse_gate_value(value: str) -> float:
    """Returns the gate of a query value such as ``"0.3"``, rounded to :data:`GATE_STEP`.

    Raises:
        ValueError: not a number, or outside 0 to :data:`MAX_GATE`.
    """
    gate = float(value)
    if not math.isfinite(gate) or not 0.0 <= gate <= MAX_GATE:
        raise ValueError(f"the gate must be a number from 0 to {MAX_GATE:g}, got {value!r}")
    return round(round(gate / GATE_STEP) * GATE_STEP, 6)


def parse_flip_value(value: str) -> bool:
    """Returns the flip switch of a query value (``1``/``0`` and the other spellings of
    :data:`FLIP_ON` / :data:`FLIP_OFF`).

    Raises:
        ValueError: none of those spellings.
    """
    text = value.strip().lower()
    if text not in FLIP_ON + FLIP_OFF:
        raise ValueError(f"flip must be 1 or 0, got {value!r}")
    return text in FLIP_ON


def _parsed(
    value: str | None, parse: Callable[[str], T], notice: str, notices: list[str]
) -> T | None:
    """Returns ``parse(value)``, or ``None`` when ``value`` is absent or ``parse`` refuses it
    (then ``notice``, formatted with the shown ``value`` and the ``error``, is added to
    ``notices``)."""
    if value is None:
        return None
    try:
        return parse(str(value))
    except ValueError as exc:
        notices.append(notice.format(value=_shown(value), error=exc))
        return None


def parse_view(params: Mapping[str, object], known: KnownNames) -> tuple[SharedView, list[str]]:
    """Returns the :class:`SharedView` of query ``params`` and the notices for every value
    that was dropped (the default is used for it). Parameters other than :data:`PARAMS` are
    ignored."""
    notices: list[str] = []
    raw = {name: _single(name, params[name], notices) for name in PARAMS if name in params}
    model = _one_of("model", raw.get(PARAM_MODEL), known.models, notices)
    image = _one_of("sample image", raw.get(PARAM_IMAGE), known.samples, notices)
    tab = _one_of("tab", raw.get(PARAM_TAB), known.tabs, notices)
    cascade = _parsed(
        raw.get(PARAM_CASCADE),
        lambda v: parse_cascade_value(v, known.limits),
        "Cascade {value} in the link is not usable ({error}); using the default.",
        notices,
    )
    method = _parsed(
        raw.get(PARAM_METHOD),
        parse_method_value,
        "Unknown merge method {value} in the link; using the default.",
        notices,
    )
    flip = _parsed(
        raw.get(PARAM_FLIP),
        parse_flip_value,
        "Flip {value} in the link is neither 1 nor 0; flip is left off.",
        notices,
    )
    gate = _parsed(
        raw.get(PARAM_GATE),
        parse_gate_value,
        "Gate {value} in the link is not a number from 0 to "
        + f"{MAX_GATE:g}; gating is left off.",
        notices,
    )
    gate_by = _one_of("gate criterion", raw.get(PARAM_GATE_BY), GATE_CRITERIA, notices)
    return SharedView(model, image, cascade, method, tab, flip, gate, gate_by), notices


def check_method(view: SharedView, options: Iterable[str]) -> tuple[SharedView, str | None]:
    """Returns the view with its method dropped when the model cannot show it (not among
    ``options``), and the notice saying so (``None`` when it is kept)."""
    options = list(options)
    if view.method is None or view.method in options:
        return view, None
    notice = (
        f"The link's merge method {_shown(view.method)} is not available for this model and "
        f"cascade ({', '.join(options)}); using the default."
    )
    return replace(view, method=None), notice


def format_cascade_value(scales: Iterable[float]) -> str:
    """Returns the query form of a cascade: ``"0.5,1,2"``."""
    return ",".join(f"{s:g}" for s in scales)


def to_params(view: SharedView) -> dict[str, str]:
    """Returns the query parameters of a view (choices left at ``None`` are omitted)."""
    values = {
        PARAM_MODEL: view.model,
        PARAM_IMAGE: view.image,
        PARAM_CASCADE: None if view.cascade is None else format_cascade_value(view.cascade),
        PARAM_METHOD: view.method,
        PARAM_GATE: f"{view.gate:g}" if view.gate else None,
        PARAM_GATE_BY: view.gate_by if view.gate_by != DEFAULT_GATE_BY else None,
        PARAM_FLIP: "1" if view.flip else None,
        PARAM_TAB: view.tab,
    }
    return {k: v for k, v in values.items() if v}


def split_cascade(cascade: Iterable[float], toggles: Sequence[float]) -> tuple[list[float], str]:
    """Returns ``(toggled, extra)``: the scales offered as toggles, and the others as the
    free-text list the cascade editor takes (``"0.35, 3"``)."""
    toggled = [s for s in cascade if s in toggles]
    extra = [s for s in cascade if s not in toggles]
    return toggled, ", ".join(f"{s:g}" for s in extra)


def widget_values(
    view: SharedView, toggles: Sequence[float], sample_source: str, tab_key: str
) -> dict[str, Any]:
    """Returns widget key -> value that shows ``view`` in the explorer (``sample_source`` is the
    image-source option of bundled samples, ``tab_key`` the tabs' key); choices at ``None``
    are left out."""
    values: dict[str, Any] = {}
    if view.model is not None:
        values[KEY_MODEL] = view.model
    if view.image is not None:
        values[KEY_SOURCE] = sample_source
        values[KEY_SAMPLE] = view.image
    if view.cascade is not None:
        values[KEY_PILLS], values[KEY_EXTRA] = split_cascade(view.cascade, toggles)
    if view.method is not None:
        values[KEY_METHOD] = view.method
    if view.gate is not None:
        values[KEY_GATE] = view.gate
    if view.gate_by is not None:
        values[KEY_GATE_BY] = view.gate_by
    if view.flip is not None:
        values[KEY_FLIP] = view.flip
    if view.tab is not None:
        values[tab_key] = view.tab
    return values
