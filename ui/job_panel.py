"""The one panel every page with a background job shows: its progress (done/total, phase, pace and
time left where they are known), its Stop button, 'stopping…' once a stop is asked, how it ended in
words, and the hand-off to the page once it has ended.

A page describes its job as a `JobView`: how to read its status and stop it through the job's façade
(core.evaluate.jobs, core.region.jobs, core.train.runs …), and what to call it. The status is read
from the job's folder on every refresh, never kept in the session, so a reload, a page switch or a
second session finds the same job by its key and re-attaches to it. The panel is an
`st.fragment(run_every=REFRESH_SECONDS)`: only it is redrawn while the job runs, and the whole page
reruns once the job has ended (the hand-off: the page then shows the result or `job_outcome`).

Session state keys:
  job_panel_pace:<job key>   (seconds, done) when this session first saw the job counting
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.jobs.status import is_active
from ui.text import md_escape

REFRESH_SECONDS = 1.0
PACE_KEY = "job_panel_pace:"  # + the job's key
MIN_PACE_SECONDS = 1.0  # a pace measured over less than this is noise
BACKGROUND_NOTE = "This runs in the background: you may reload the page or come back later."
STOP_TOAST = "Stop requested: the job ends at its next batch."
STOPPING_NOTE = "Stop requested: the job ends at its next batch; nothing it computed is kept."


def _never() -> bool:
    return False


@dataclass(frozen=True)
class JobView:
    """One background job as a page follows it.

    `progress(status)` gives the bar's fraction in [0, 1] and its line of text; `counted(status)`
    gives (done, total) when the job counts items, for its pace and time left (None: the line says
    them itself, as training's does). `title` is markdown-safe.
    """

    key: str  # the job's own key (its folder): what a reload or another session finds it by
    title: str
    read: Callable[[], dict | None]
    stop: Callable[[], object]
    stop_key: str  # the Stop button's widget key
    progress: Callable[[dict], tuple[float, str]]
    stop_requested: Callable[[], bool] = _never
    counted: Callable[[dict], tuple[int, int] | None] | None = None
    unit: str = "patches"
    stop_toast: str = STOP_TOAST
    stopping_note: str = STOPPING_NOTE
    background_note: str | None = BACKGROUND_NOTE


def done_of_total(status: dict) -> tuple[int, int]:
    """The job's (done, total) counts as its status.json holds them (0 when absent)."""
    return int(status.get("done") or 0), int(status.get("total") or 0)


def fraction_done(status: dict) -> float:
    done, total = done_of_total(status)
    return min(done / total, 1.0) if total else 0.0


# --------------------------------------------------------------------------- the live panel


def job_panel(view: JobView) -> None:
    """The running job's panel, refreshed every REFRESH_SECONDS; the whole page reruns once it ends."""
    _live(view)


@st.fragment(run_every=REFRESH_SECONDS)
def _live(view: JobView) -> None:
    status = view.read() or {}
    if not is_active(status):
        st.session_state.pop(PACE_KEY + view.key, None)
        st.rerun(scope="app")  # finished, failed or stopped: the page shows the outcome (the hand-off)
    job_progress(view, status)


def job_progress(view: JobView, status: dict) -> None:
    """An active job's bar, note and Stop button; 'stopping…' and no button once a stop was asked
    (here or from another session). Usable inside a page's own fragment (Train's live curves)."""
    if view.stop_requested():
        _stopping(view, status)
        return
    fraction, text = view.progress(status)
    st.progress(fraction, text=text + _pace(view, status))
    if view.background_note:
        st.caption(view.background_note)
    st.button("Stop", key=view.stop_key, on_click=_stop, args=(view,))


def _stop(view: JobView) -> None:
    """The Stop click, before the panel is drawn again: so it reads 'stopping…' at once."""
    view.stop()
    st.toast(view.stop_toast)


def _stopping(view: JobView, status: dict) -> None:
    fraction, _ = view.progress(status)
    counts = view.counted(status) if view.counted else None
    counted = f" ({counts[0]:,}/{counts[1]:,} {view.unit} done)" if counts and counts[1] else ""
    st.progress(fraction, text=f"{view.title}: stopping…{counted}")
    st.caption(view.stopping_note)


# --------------------------------------------------------------------------- pace and time left


def _pace(view: JobView, status: dict) -> str:
    """' · 120 patches/s · about 30 s left' once this session has watched the count grow for a second."""
    counts = view.counted(status) if view.counted else None
    if not counts or not counts[1]:
        return ""
    done, total = counts
    first = st.session_state.setdefault(PACE_KEY + view.key, (time.time(), done))
    return pace_words(first, (time.time(), done), total, view.unit)


def pace_words(first: tuple[float, int], now: tuple[float, int], total: int, unit: str) -> str:
    """The pace between two (seconds, done) samples and the time left at it, in words ('' while unknown)."""
    seconds, counted = now[0] - first[0], now[1] - first[1]
    if seconds < MIN_PACE_SECONDS or counted <= 0:
        return ""
    rate = counted / seconds
    return f" · {rate:,.0f} {unit}/s · {time_left_words(max(total - now[1], 0) / rate)}"


def time_left_words(seconds: float) -> str:
    if seconds < 60:
        return f"about {max(seconds, 1):.0f} s left"
    if seconds < 3600:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


# --------------------------------------------------------------------------- how it ended


def job_outcome(status: dict | None, *, doing: str, idle: str) -> None:
    """Why the result is not there: the job `doing` ('Computing X') failed (its reason in words), was
    stopped, or never ran (`idle`). Texts are markdown-escaped here, except `idle`, which is the page's."""
    state = (status or {}).get("state")
    if state == "failed":
        st.error(f"{md_escape(doing)} failed: {md_escape((status or {}).get('error') or 'no reason given')}")
    elif state == "stopped":
        st.info(f"{md_escape(doing)} was stopped before it finished.")
    else:
        st.info(idle)
