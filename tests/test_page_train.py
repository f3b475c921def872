"""AppTest of the Train page: start a real job from the form, watch it finish, see the runs table."""

from __future__ import annotations

import time

import pytest
from page_helpers import PAGE_SCRIPTS
from streamlit.testing.v1 import AppTest

from core.settings import PROJECT_DIR
from core.train.runs import list_runs, read_metrics, read_status

APP = str(PROJECT_DIR / "streamlit_app.py")


@pytest.fixture()
def train_page(tmp_path, monkeypatch, small_kaggle):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(small_kaggle.parent))
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["dataset_path"] = str(small_kaggle)
    at.run()
    at.switch_page(PAGE_SCRIPTS["train"])
    at.run()
    assert not at.exception
    return at


def test_start_from_the_page_watch_it_finish_and_compare(train_page):
    at = train_page
    assert any("No job is running" in i.value for i in at.info)
    at.selectbox(key="arch").set_value("tiny")
    at.number_input(key="epochs").set_value(3)
    at.number_input(key="train_swa_epochs").set_value(2)  # weight averaging of epochs 2 and 3
    at.select_slider(key="batch_size").set_value(16)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    runs = list_runs()
    assert len(runs) == 1 and runs[0].architecture == "tiny"
    run_dir = runs[0].path

    # The fragment does not tick by itself in AppTest: rerun until the job is done.
    deadline = time.time() + 240
    while read_status(run_dir)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(1.0)
        at.run()
        assert not at.exception
    assert read_status(run_dir)["state"] == "finished"
    at.run()
    (finished,) = [s.value for s in at.success if s.value.startswith("Finished")]
    charts = [c for c in at.get("plotly_chart")]
    assert charts, "the live curves chart is drawn"
    records = read_metrics(run_dir)
    assert len([r for r in records if r["kind"] == "epoch"]) == 3
    (swa,) = [r for r in records if r["kind"] == "swa"]
    assert f"Weights averaged over epochs 2–3: val AUC {swa['val_auc']:.4f}" in finished
    assert ("the model is this average" in finished) == swa["adopted"]
    table = at.dataframe[-1].value
    assert list(table["run"]) == [run_dir.name]
    assert table["status"].iloc[0] == "finished" and table["epochs"].iloc[0] == "3/3"
    delivered = (
        swa
        if swa["adopted"]
        else max((r for r in records if r["kind"] == "epoch"), key=lambda r: r["val_auc"])
    )
    assert table["best val AUC"].iloc[0] == pytest.approx(delivered["val_auc"], abs=1e-4)


def test_a_path_outside_the_roots_is_refused_on_start(train_page):
    at = train_page
    at.text_area(key="train_data").set_value("/usr/share")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert any("outside the data roots" in e.value for e in at.error)
    assert list_runs() == []


def live_chart_script(run_dir: str) -> None:
    """Reads of a running run's curves: a batch appended within CHART_SECONDS, then past it, then an
    epoch ended within it, then the run finished."""
    import time as clock
    from pathlib import Path

    import streamlit as st

    from core.train.runs import append_metrics
    from ui import train_watch

    def batch(step: int) -> dict:
        return {"kind": "batch", "epoch": 1, "step": step, "steps": 10, "loss": 0.6, "accuracy": 0.5,
                "time": clock.time()}  # fmt: skip

    run = Path(run_dir)
    append_metrics(run, batch(1))
    first = train_watch.live_figure(run, "running")
    append_metrics(run, batch(2))
    again = train_watch.live_figure(run, "running")
    train_watch.CHART_SECONDS = 0.0
    later = train_watch.live_figure(run, "running")
    train_watch.CHART_SECONDS = 10.0
    append_metrics(run, {"kind": "epoch", "epoch": 1, "loss": 0.5, "val_loss": 0.55, "time": clock.time()})
    epoch = train_watch.live_figure(run, "running")
    ended = train_watch.live_figure(run, "finished")
    figures = (first, again, later, epoch, ended)
    st.session_state["points"] = [sum(len(trace.x) for trace in f.data) for f in figures]
    st.session_state["same"] = again is first


def test_a_running_jobs_chart_is_redrawn_when_an_epoch_ends_else_at_most_every_chart_seconds(tmp_path):
    """Between two redraws the page sends the figure it drew last (the browser draws nothing new);
    past CHART_SECONDS, when an epoch has ended and when the job ends, the curves are read again."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    at = AppTest.from_function(live_chart_script, args=(str(run_dir),)).run()
    assert not at.exception, at.exception
    assert at.session_state["same"]
    assert at.session_state["points"] == [2, 2, 4, 6, 6]
