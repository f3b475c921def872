"""The Train page's "Current job": the run being watched, its progress and Stop (ui.job_panel), how
it ended, its warnings and its live curves.

The job runs in its own process (core.train.job); this panel only reads its files, refreshed by a
fragment every REFRESH_SECONDS while it is queued or running. When the watched job changes state
the fragment redraws the whole page, so the runs table, the buttons and the sidebar never show a
state that is gone.

While the job runs, the live curves are redrawn when an epoch ends and otherwise at most every
CHART_SECONDS (the progress line every REFRESH_SECONDS): between two redraws the fragment sends the
figure it drew last, which the browser does not draw again. Redrawn at every refresh, the chart cost
Chromium about a quarter of a core, taken from the training it showed (11.2-12.3 CPU-s per 20 s,
against 4.7-8.6 with the 10 s rule alone; BENCHMARKS.md).

Session state keys:
  watched_run         the run directory shown under "Current job"
  train_drawn_state   (run name, state) of the watched run when the page was last drawn
  train_live_chart    the curves drawn last: {"key": (run name, state, epochs ended), "at", "figure"}
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from core.errors import RunError
from core.train.runs import ACTIVE_STATES, active_run, read_metrics, read_status, request_stop, stop_requested
from core.train.views import curves_long, outcome_words, run_progress
from ui.charts import training_curves_figure
from ui.job_panel import JobView, job_progress
from ui.notices import redraw_page
from ui.text import md_escape

WATCHED_KEY = "watched_run"
DRAWN_KEY = "train_drawn_state"
CHART_KEY = "train_live_chart"
REFRESH_SECONDS = 2.0
CHART_SECONDS = 10.0
STOP_WORDS = "Stop requested: the job stops after its current batch and keeps its best checkpoint."


def current_job() -> None:
    """The watched job, redrawn every REFRESH_SECONDS while it is queued or running, then once it
    has ended. No refresh while nothing runs: any fragment rerun closed the list the user had open
    on the page (the run picker) every two seconds. So an idle page shows a job started in another
    session at its next rerun (a click, a reload), and the running job's panel redraws the whole
    page when the job ends."""
    drawn = st.session_state[DRAWN_KEY] = watched_state()
    active = drawn is not None and drawn[1] in ACTIVE_STATES
    st.fragment(_current_job_body, run_every=REFRESH_SECONDS if active else None)()


def watched_run() -> Path | None:
    """The running job if there is one, else the run last started or resumed in this session."""
    running = active_run()
    if running is not None:
        st.session_state[WATCHED_KEY] = str(running)
    watched = st.session_state.get(WATCHED_KEY)
    return Path(watched) if watched else None


def watched_state() -> tuple[str, str | None] | None:
    run_dir = watched_run()
    if run_dir is None:
        return None
    try:
        return run_dir.name, read_status(run_dir).get("state")
    except RunError:
        return run_dir.name, None


def _current_job_body() -> None:
    now = watched_state()
    if now != st.session_state.get(DRAWN_KEY):  # started, ended or vanished: redraw the whole page
        if now is not None and now[1] in ACTIVE_STATES:
            redraw_page()  # still running: a refused Start naming it still holds, so the page keeps it
        st.rerun()  # ended or gone: a refusal naming it no longer holds, and goes
    run_dir = watched_run()
    if run_dir is None:
        st.info("No job is running. Configure one below.")
        return
    show_run(run_dir)


def show_run(run_dir: Path) -> None:
    """Status, progress (or how it ended), warnings and live curves of one run."""
    try:
        status = read_status(run_dir)
    except RunError as error:
        st.warning(md_escape(error))
        st.session_state.pop(WATCHED_KEY, None)
        return
    state = status["state"]
    resumed = f" · resumed from {md_escape(status['resumed_from'])}" if status.get("resumed_from") else ""
    st.markdown(f"**{md_escape(run_dir.name)}** — {state} · {md_escape(status.get('phase') or '')}{resumed}")
    if state in ACTIVE_STATES:
        job_progress(run_view(run_dir), status)
    else:
        show_outcome(status)
    if status.get("warning"):
        st.warning(md_escape(status["warning"]))
    if status.get("damaged"):
        st.warning(f"damaged: {md_escape(status['damaged'])}")
    for note in status.get("notes") or []:
        st.caption(md_escape(note))
    figure = live_figure(run_dir, state)
    if figure is None:
        st.caption("Waiting for the first batches…")
    else:
        st.plotly_chart(figure, width="stretch", key=f"live-{run_dir.name}")


def live_figure(run_dir: Path, state: str):
    """The run's curves (None before its first batches). While the job runs, the figure drawn last
    is sent again until it is CHART_SECONDS old or an epoch has ended since (a new point of every
    curve); else the curves are drawn again from its metrics."""
    records = read_metrics(run_dir)
    key = (run_dir.name, state, sum(r.get("kind") == "epoch" for r in records))
    drawn = st.session_state.get(CHART_KEY)
    if drawn and drawn["key"] == key and time.monotonic() - drawn["at"] < CHART_SECONDS:
        return drawn["figure"]
    curves = curves_long(records, running=state in ACTIVE_STATES)
    if curves.empty:
        return None
    figure = training_curves_figure(curves)
    if state in ACTIVE_STATES:
        st.session_state[CHART_KEY] = {"key": key, "at": time.monotonic(), "figure": figure}
    return figure


def run_view(run_dir: Path) -> JobView:
    """How the job panel reads, stops and words a training run."""
    return JobView(
        key=run_dir.name,
        title=md_escape(run_dir.name),
        read=lambda: read_status(run_dir),
        stop=lambda: request_stop(run_dir),
        stop_key=f"stop-{run_dir.name}",
        progress=run_progress,
        stop_requested=lambda: stop_requested(run_dir),
        stop_toast=STOP_WORDS,
        stopping_note=STOP_WORDS,
        background_note=None,
    )


def show_outcome(status: dict) -> None:
    """How the run ended (core.train.views.outcome_words), coloured by its state."""
    kind = {"failed": st.error, "stopped": st.warning}.get(status["state"], st.success)
    kind(md_escape(outcome_words(status)))
