"""Messages a callback or a first run leaves for a later drawing of one place of the page.

Session state key (its one home):
  sidebar_notices   [(place, level, text)], each shown once where `place` is drawn next: "main" (top of
                    the page), "open" (under the sidebar's Open button) or "roots" (in the data-roots
                    setting). The text is markdown: quote user-supplied text through ui.text.md_escape.
"""

from __future__ import annotations

import streamlit as st

NOTICES_KEY = "sidebar_notices"
LEVELS = {"error": st.error, "warning": st.warning, "success": st.success}


def notice(place: str, level: str, text: str) -> None:
    """Queue `text` for the next drawing of `place`, as an error, warning or success box."""
    st.session_state.setdefault(NOTICES_KEY, []).append((place, level, text))


def show_notices(where: str) -> None:
    """Show, once, the queued messages meant for `where`."""
    keep = []
    for place, level, text in st.session_state.get(NOTICES_KEY, []):
        if place != where:
            keep.append((place, level, text))
            continue
        LEVELS[level](text)
    st.session_state[NOTICES_KEY] = keep
