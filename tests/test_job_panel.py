"""ui.job_panel: the one job panel, drawn by Streamlit's AppTest over a real job folder.

The job's status.json is written by the real job reporter (core.train.runs.write_status) and read
back through the real façade (core.evaluate.jobs.read_job), with this test's process as the job's
live pid, so the panel sees exactly what it would see of a prediction job at that moment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluate.jobs import LOADING_PHASE, PREDICTING_PHASE, job_dir
from core.jobs.launch import queue
from core.jobs.status import QUEUED_PHASE
from core.train.runs import write_status
from ui.job_panel import pace_words, time_left_words

KEY = "0123456789abcdef"


def panel_page(folder: str, key: str) -> None:
    """A page following one prediction job, as Evaluate does: the panel while it runs, else its outcome."""
    import streamlit as st

    from core.evaluate.jobs import read_job
    from core.jobs.status import is_active
    from ui.job_panel import job_outcome, job_panel
    from ui.prediction_jobs import prediction_job_view

    status = read_job(key, folder)
    if is_active(status):
        job_panel(prediction_job_view(key, folder, "tiny.keras", "stop_prediction_job"))
    else:
        job_outcome(status, doing="Computing tiny.keras", idle="tiny.keras: not computed yet.")
        st.write(f"page drawn after the job: {(status or {}).get('state')}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def job_status(folder: Path, state: str, pid: int | None = None, **fields) -> None:
    target = job_dir(KEY, folder)
    target.mkdir(parents=True, exist_ok=True)
    write_status(target, state, pid=pid or os.getpid(), **fields)


def session(folder: Path) -> AppTest:
    at = AppTest.from_function(panel_page, args=(str(folder), KEY), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def bar_text(at: AppTest) -> str:
    (bar,) = at.get("progress")
    return bar.proto.text


def test_a_running_job_shows_its_count_and_a_second_session_attaches(folder):
    job_status(folder, "running", phase=PREDICTING_PHASE, done=3, total=12)
    first, second = session(folder), session(folder)  # a reload is a new session too
    for at in (first, second):
        assert bar_text(at) == "Predicting with tiny.keras… 3/12 patches"
        assert at.button(key="stop_prediction_job")
        assert any("runs in the background" in c.value for c in at.caption)


def test_queued_then_loading_it_says_so_without_a_count(folder):
    queue(job_dir(KEY, folder))  # what a launch writes before a worker is free
    at = session(folder)
    assert bar_text(at) == f"tiny.keras: {QUEUED_PHASE}"
    assert at.button(key="stop_prediction_job")
    job_status(folder, "running", phase=LOADING_PHASE, done=0)
    assert bar_text(session(folder)) == f"tiny.keras: {LOADING_PHASE}"


def test_stop_asks_the_job_and_every_session_then_reads_stopping(folder):
    job_status(folder, "running", phase=PREDICTING_PHASE, done=4, total=12)
    at, other = session(folder), session(folder)
    at.button(key="stop_prediction_job").click().run()
    assert (job_dir(KEY, folder) / "stop.request").is_file()
    other.run()
    for page in (at, other):
        assert bar_text(page) == "tiny.keras: stopping… (4/12 patches done)"
        assert not any(b.key == "stop_prediction_job" for b in page.button)


def test_the_page_takes_over_once_the_job_has_ended(folder):
    job_status(folder, "running", phase=PREDICTING_PHASE, done=11, total=12)
    at = session(folder)
    job_status(folder, "finished", phase="done", done=12, total=12)
    at.run()
    assert not at.get("progress")
    assert any("page drawn after the job: finished" in m.value for m in at.markdown)


def test_a_failed_job_says_why_in_words(folder):
    job_status(folder, "failed", phase="failed", error="The model file tiny.keras is damaged.")
    at = session(folder)
    assert [e.value for e in at.error] == [
        "Computing tiny.keras failed: The model file tiny.keras is damaged."
    ]


def test_a_job_whose_process_is_gone_reads_failed(folder):
    job_status(folder, "running", pid=2**22 + 1, phase=PREDICTING_PHASE, done=1, total=12)  # beyond pid_max
    at = session(folder)
    assert not at.get("progress") and "ended without reporting a result" in at.error[0].value


def test_a_stopped_job_and_one_never_started(folder):
    assert [i.value for i in session(folder).info] == ["tiny.keras: not computed yet."]
    job_status(folder, "stopped", phase="stopped")
    assert [i.value for i in session(folder).info] == ["Computing tiny.keras was stopped before it finished."]


def test_pace_and_time_left_in_words():
    assert pace_words((100.0, 0), (110.0, 100), 400, "patches") == " · 10 patches/s · about 30 s left"
    assert pace_words((100.0, 0), (110.0, 100), 1000, "patches").endswith("about 2 min left")
    assert pace_words((100.0, 5), (100.5, 50), 1000, "patches") == ""  # too short to measure
    assert pace_words((100.0, 5), (120.0, 5), 1000, "patches") == ""  # nothing counted yet
    assert time_left_words(600) == "about 10 min left" and time_left_words(7200) == "about 2.0 h left"
