"""The head every page of the explorer's multipage app draws first."""

from __future__ import annotations

import streamlit as st

from app import common
from hmsa_core.discovery import ModelEntry


def page_header(name: str, caption: str) -> None:
    """Sets the page's browser title ("HMSA Explorer · <name>", wide layout) and draws its
    title (``name`` capitalised) and the one-line ``caption``; returns nothing."""
    st.set_page_config(page_title=f"HMSA Explorer · {name}", layout="wide")
    st.title(name.capitalize())
    st.caption(caption)


def pick_model(key: str) -> ModelEntry | None:
    """Draws the model choice (widget ``key``) of :func:`app.common.list_models`; returns the
    picked entry, or ``None`` with an error shown when no model is available."""
    entries = common.list_models()
    if not entries:
        st.error("No model is available: train the bundled one (see README.md).")
        return None
    names = [e.name for e in entries]
    return entries[names.index(st.selectbox("Model", names, key=key))]
