"""Messages a callback or a first run leaves for a later drawing of one place of the page.

A message stays until the user acts again: a redraw the page makes by itself while the job it
follows goes on (queued -> running, `redraw_page`) shows it again, so a refused Start naming that job
does not vanish a second later. A redraw because the job ended is a plain `st.rerun()`: what was said
about it no longer holds, and goes.

Session state keys (their one home):
  sidebar_notices   [Notice(place, level, text, shown)], each shown where `place` is drawn next: "main" (top
                    of the page), "open" (under the sidebar's Open button), "roots" (in the data-roots
                    setting) or a page's own place. The text is markdown: quote user-supplied text
                    through ui.text.md_escape.
  notices_redraw    set by `redraw_page` for the run it asks for: the messages already shown are kept
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

NOTICES_KEY = "sidebar_notices"
REDRAW_KEY = "notices_redraw"
LEVELS = {"error": st.error, "warning": st.warning, "success": st.success}


class Notice(NamedTuple):
    place: str
    level: str  # a key of LEVELS
    text: str  # markdown
    shown: bool = False  # drawn at least once: dropped at the user's next action


def notice(place: str, level: str, text: str) -> None:
    """Queue `text` for the next drawing of `place`, as an error, warning or success box."""
    st.session_state.setdefault(NOTICES_KEY, []).append(Notice(place, level, text))


def begin_run() -> None:
    """At the top of every run of a page: the messages shown before are dropped, since the user has
    acted since; unless the page asked for this run itself (`redraw_page`)."""
    if st.session_state.pop(REDRAW_KEY, False):
        return
    queued = st.session_state.get(NOTICES_KEY, [])
    st.session_state[NOTICES_KEY] = [message for message in queued if not message.shown]


def show_notices(where: str) -> None:
    """Show the queued messages meant for `where`; they stay until the user's next action."""
    queued = st.session_state.get(NOTICES_KEY, [])
    for number, message in enumerate(queued):
        if message.place == where:
            LEVELS[message.level](message.text)
            queued[number] = message._replace(shown=True)
    st.session_state[NOTICES_KEY] = queued


def redraw_page() -> None:
    """Rerun the whole page on the app's own account (the job it follows moved on and still runs),
    keeping the messages it shows: the user has not acted, and what they say still holds."""
    st.session_state[REDRAW_KEY] = True
    st.rerun(scope="app")
