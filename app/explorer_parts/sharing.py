"""The main page's link and hand-over state: restores a view from the URL query (or from an
image the dataset page opened) before the sidebar draws, and writes the current view back.

Parsing and validation live in :mod:`app.explorer_parts.query` (pure); this module only moves
values between ``st.query_params``, the session state and the widgets' keys.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from app import common
from app.explorer_parts import query
from hmsa_core.limits import limits_from_env

#: Session key the dataset page puts an :class:`OpenRequest` under.
OPEN_REQUEST = "hmsa_open_request"
#: Session key of the :class:`OpenedImage` the sidebar offers.
OPENED_IMAGE = "hmsa_opened_image"
#: Session key of the query parameters this page last wrote.
WRITTEN = "hmsa_query_written"
#: Session key of ``(params, notices)``: the notices of the last restore, shown while the
#: view is unchanged.
NOTICES = "hmsa_link_notices"
#: Image-source option of an image opened from the dataset page.
SOURCE_DATASET = "Dataset image"
#: Image-source option of a bundled sample (the only source a link can name).
SOURCE_SAMPLE = "Bundled sample"
#: Image-source option of an uploaded file.
SOURCE_UPLOAD = "Upload"


@dataclass(frozen=True)
class OpenRequest:
    """An image the dataset page asks the main page to open.

    Attributes:
        data: the data source as :meth:`analysis.dataset_sources.DataSource.to_dict` gives it.
        index: the image's index in it.
        model: the model menu name to show it with.
        cascade: the cascade, ascending.
        method: the merge method.
    """

    data: dict
    index: int
    model: str
    cascade: tuple[float, ...]
    method: str


@dataclass(frozen=True)
class OpenedImage:
    """An image opened from the dataset page.

    Attributes:
        name: its sample name (e.g. ``"synthscapes/val/3"``).
        rgb: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` int64 class ids, or ``None``.
        instances: ``(H, W)`` int32 instance ids (0 = none) where the data has them, else
            ``None`` (the "Where scales win" tab's objects).
        distances: instance id -> camera distance in metres (SynthScapes), else ``None``.
    """

    name: str
    rgb: np.ndarray
    mask: np.ndarray | None
    instances: np.ndarray | None = None
    distances: dict[int, float] | None = None


def _params_now() -> dict[str, Any]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def known_names(tabs: tuple[str, ...]) -> query.KnownNames:
    """Returns the models, samples and tabs a link may name now."""
    return query.KnownNames(
        models=tuple(e.name for e in common.list_models()),
        samples=tuple(s.name for s in common.list_samples()),
        tabs=tabs,
        limits=limits_from_env(),
    )


def _checked_method(view: query.SharedView, notices: list[str]) -> query.SharedView:
    """Drops the view's method when its model (loaded here, cached) cannot merge it."""
    entries = common.list_models()
    if view.method is None or not entries:
        return view
    try:
        entry = common.find_model(view.model, entries) if view.model else entries[0]
        model = common.get_model(entry)
    except ValueError:
        return view  # the sidebar reports the model error itself
    options = common.method_options(model, view.cascade or common.DEFAULT_CASCADE)
    view, notice = query.check_method(view, options)
    if notice:
        notices.append(notice)
    return view


def _apply(view: query.SharedView, session: MutableMapping[str, Any], tab_key: str) -> None:
    toggles = list(common.SCALE_CHOICES)
    for key, value in query.widget_values(view, toggles, SOURCE_SAMPLE, tab_key).items():
        session[key] = value


def _open_request(session: MutableMapping[str, Any], notices: list[str]) -> query.SharedView:
    """Loads the image a dataset-page request names into :data:`OPENED_IMAGE`; returns the
    view (model, cascade, method) to show it with."""
    from analysis.dataset_sources import DataSource

    request: OpenRequest = session.pop(OPEN_REQUEST)
    try:
        sample = DataSource.from_dict(request.data).open()[request.index]
    except (ValueError, IndexError, OSError) as exc:
        notices.append(f"The dataset image could not be opened: {exc}")
        return query.SharedView()
    session[OPENED_IMAGE] = OpenedImage(
        sample.name,
        sample.image,
        sample.mask,
        sample.instances,
        sample.object_distance,
    )
    session[query.KEY_SOURCE] = SOURCE_DATASET
    return query.SharedView(request.model, None, request.cascade, request.method, "Overlay")


def restore(session: MutableMapping[str, Any], tabs: tuple[str, ...], tab_key: str) -> None:
    """Sets the widgets' session keys from the URL query when it was not written by this page
    (a shared link, a fresh visit, a return from another page) or from the dataset page's
    open request; keeps the notices of values dropped for defaults (see :func:`notices`)."""
    params = _params_now()
    written = session.get(WRITTEN)
    notices: list[str] = []
    if OPEN_REQUEST in session:
        view = _open_request(session, notices)
    elif written is not None and params == {k: [v] for k, v in written.items()}:
        return
    else:
        if not params and written:  # back from another page: the switch cleared the URL
            params = {k: [v] for k, v in written.items()}
        view, notices = query.parse_view(params, known_names(tabs))
    view = _checked_method(view, notices)
    _apply(view, session, tab_key)
    session[NOTICES] = (None, notices)


def notices(session: MutableMapping[str, Any]) -> list[str]:
    """Returns the notices of the last restore while the view it restored is unchanged."""
    stored = session.get(NOTICES)
    if not stored or stored[0] != session.get(WRITTEN):
        return []
    return list(stored[1])


def current_view(session: MutableMapping[str, Any], choices: Any, tab_key: str) -> query.SharedView:
    """Returns the :class:`~query.SharedView` the page shows now (the image only when it is a
    bundled sample: uploads and dataset images cannot travel in a link)."""
    sample = None
    if session.get(query.KEY_SOURCE, SOURCE_SAMPLE) == SOURCE_SAMPLE:
        sample = session.get(query.KEY_SAMPLE)
    return query.SharedView(
        model=choices.entry.name if choices.entry is not None else None,
        image=sample if choices.image is not None else None,
        cascade=choices.scales or None,
        method=choices.method if choices.model is not None else None,
        tab=session.get(tab_key),
        flip=bool(choices.flip),
        gate=float(choices.gate),
        gate_by=choices.gate_by,
    )


def write(session: MutableMapping[str, Any], choices: Any, tab_key: str) -> None:
    """Writes the current view into the URL query (only when it changed)."""
    params = query.to_params(current_view(session, choices, tab_key))
    stored = session.get(NOTICES)
    if stored is not None and stored[0] is None:
        session[NOTICES] = (params, stored[1])  # the restored view: keep its notices
    if _params_now() != {k: [v] for k, v in params.items()}:
        st.query_params.from_dict(params)
    session[WRITTEN] = params
