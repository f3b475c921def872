"""Data roots a web user adds in the sidebar, and whether this server lets them.

Adding roots from the page is a server setting (core.settings.roots_from_ui): PATCHLENS_ROOTS_FROM_UI=1
or 0, by default on only when Streamlit listens on localhost (server.address, read here since core
never imports streamlit). When it is off the "Settings: data roots" expander is not drawn and roots
already in the session are not honoured: datasets open only inside data/, the workspace and
PATCHLENS_DATA_ROOTS.

Session state keys (one home for each):
  extra_roots   data roots added in the sidebar, on top of PATCHLENS_DATA_ROOTS
  new_root      the sidebar's data-root box
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import config

from core.errors import InputError, PatchLensError
from core.settings import DATA_ROOTS_ENV, check_allowed, data_roots, roots_from_ui
from ui.notices import notice, show_notices
from ui.text import md_escape

ROOTS_KEY = "extra_roots"
NEW_ROOT_KEY = "new_root"


def _switch() -> bool:
    """core.settings.roots_from_ui for the address this server listens on (InputError when the
    variable holds a value other than 1 or 0)."""
    return roots_from_ui(config.get_option("server.address"))


def roots_editable() -> bool:
    """Whether a web user may add data roots on this server; a bad PATCHLENS_ROOTS_FROM_UI keeps it off."""
    try:
        return _switch()
    except InputError:
        return False


def extra_roots() -> list[str]:
    """The roots added in the sidebar, when adding roots is allowed; none otherwise."""
    return list(st.session_state.get(ROOTS_KEY, [])) if roots_editable() else []


def refused_now(path: str) -> PatchLensError | None:
    """Why `path` may no longer be used, when only a root added in the sidebar let it open and such
    roots are no longer honoured; None otherwise (the data roots of the server are not re-checked)."""
    added = st.session_state.get(ROOTS_KEY) or []
    if not added or roots_editable():
        return None
    try:
        check_allowed(path)
    except PatchLensError as error:
        try:
            check_allowed(path, added)
        except PatchLensError:
            return None  # not inside the added roots either: not this check's business
        return error
    return None


def _add_typed_root() -> None:
    """Callback of Add root: checks the folder and adds it for this session."""
    text = (st.session_state.get(NEW_ROOT_KEY) or "").strip()
    if not text or not roots_editable():  # no box is drawn then; a stale click changes nothing
        return
    if not Path(text).expanduser().is_dir():
        notice("roots", "error", f"{md_escape(text)} is not a folder.")
        return
    roots = st.session_state.setdefault(ROOTS_KEY, [])
    if text not in roots:
        st.session_state[ROOTS_KEY] = [*roots, text]
    notice("roots", "success", f"Added {md_escape(text)} to the data roots of this session.")


def roots_setting() -> None:
    """The sidebar's data-roots expander where roots may be added; where they may not, nothing, or the
    reason when PATCHLENS_ROOTS_FROM_UI holds a bad value."""
    try:
        editable = _switch()
    except InputError as error:
        st.warning(md_escape(error))
        return
    if not editable:
        return
    with st.expander("Settings: data roots"):
        st.caption(f"Datasets may be opened from these folders (extend with {DATA_ROOTS_ENV}):")
        for root in data_roots(extra_roots()):
            st.code(str(root), language=None)
        st.text_input("Add a data root for this session", key=NEW_ROOT_KEY)
        st.button("Add root", key="add_root", on_click=_add_typed_root)
        show_notices("roots")
