"""AppTest of the Train page's runs table and watched job: runs chosen by name, Delete with a
confirmation, a second session deleting a run, Resume adding a row, the sidebar following the
actions, the progress text before the first batch and a job's warning.

One real tiny run is trained for the module; each test copies it into a fresh workspace under
names that sort in a known order (the table lists the newest name first).
"""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
from browser_helpers import stop_jobs
from page_helpers import copy_kaggle_subset, finished_run, open_page

from core.jobs.status import QUEUED_PHASE
from core.train.runs import STARTING_TEXT, list_runs, write_status
from ui.shared import MODEL_KEY

OLD, NEW = "20260101-000000-tiny", "20260102-000000-tiny"
SELECTED = "train_selected_runs"
WARNING = "Validation accuracy stays at chance (0.50) while training accuracy climbs."


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    data = copy_kaggle_subset(root / "data", 12)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(root / "workspace"))
        return finished_run(root / "workspace", data, name="seed", epochs=1)


@pytest.fixture()
def workspace(tmp_path, monkeypatch, trained_run):
    home = tmp_path / "workspace"
    (home / "runs").mkdir(parents=True)
    monkeypatch.setenv("PATCHLENS_HOME", str(home))
    yield home
    stop_jobs(home)  # a job resumed by a test


def add_run(workspace, trained_run, name: str, state: str | None = None, **fields):
    """A copy of the module's real run under `name`, optionally in another state."""
    target = workspace / "runs" / name
    shutil.copytree(trained_run, target)
    if state:
        write_status(target, state, **fields)
    return target


def choose(at, *names: str):
    at.multiselect(key=SELECTED).set_value(list(names)).run()
    assert not at.exception, at.exception
    return at


def click(at, label: str):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def labels(at) -> list[str]:
    return [b.label for b in at.button]


def table_runs(at) -> list[str]:
    return list(at.dataframe[-1].value["run"])


def test_delete_asks_for_confirmation_and_deleting_the_last_row_is_clean(workspace, trained_run):
    old, new = add_run(workspace, trained_run, OLD), add_run(workspace, trained_run, NEW)
    at = open_page(workspace, "train")
    assert table_runs(at) == [NEW, OLD]
    choose(at, OLD)  # the last row
    click(at, f"Delete {OLD}")
    assert old.is_dir(), "a single click must not delete"
    assert any(f"Delete run {OLD}" in w.value for w in at.warning)
    click(at, "Cancel")
    assert old.is_dir() and f"Confirm delete {OLD}" not in labels(at)

    click(at, f"Delete {OLD}")
    click(at, f"Confirm delete {OLD}")
    assert not old.exists() and new.is_dir()
    assert table_runs(at) == [NEW]
    assert at.multiselect(key=SELECTED).value == []
    assert any(f"Deleted {OLD}" in s.value for s in at.success)
    at.run()  # and the next reruns stay clean
    assert not at.exception


def test_a_run_deleted_by_another_session_drops_out_without_a_traceback(workspace, trained_run):
    old, new = add_run(workspace, trained_run, OLD), add_run(workspace, trained_run, NEW)
    first = open_page(workspace, "train")
    choose(first, NEW, OLD)
    click(first, f"Delete {OLD}")  # first is about to confirm...
    second = open_page(workspace, "train")
    choose(second, OLD)
    click(second, f"Delete {OLD}")
    click(second, f"Confirm delete {OLD}")  # ...when the second session deletes it
    assert not old.exists()

    click(first, f"Confirm delete {OLD}")  # the button first still shows
    assert new.is_dir(), "only the run the confirmation named may be deleted"
    assert any("no longer exists" in w.value for w in first.warning)
    assert first.multiselect(key=SELECTED).value == [NEW]
    assert table_runs(first) == [NEW]
    first.run()
    assert not first.exception
    assert f"Confirm delete {OLD}" not in labels(first)


def test_the_selection_stays_on_the_run_by_name_when_resume_adds_a_row(workspace, trained_run):
    stopped = add_run(workspace, trained_run, OLD, "stopped", note="stopped by the user")
    finished = add_run(workspace, trained_run, NEW)
    at = open_page(workspace, "train")
    choose(at, OLD)
    assert table_runs(at)[1] == OLD
    click(at, f"Resume {OLD}")
    assert len(list_runs()) == 2, "Resume started a run before asking for its epochs"
    epochs = at.number_input(key="resume_epochs")
    assert (epochs.value, epochs.min) == (2, 2)  # the checkpoint is from epoch 1 of 1
    epochs.set_value(4).run()
    at.number_input(key="resume_swa_epochs").set_value(2).run()
    click(at, f"Start resumed run of {OLD}")
    resumed = [r.name for r in list_runs() if r.name not in (OLD, NEW)]
    assert len(resumed) == 1, resumed
    assert table_runs(at)[0] == resumed[0], "the resumed run is a new first row"
    config = json.loads((workspace / "runs" / resumed[0] / "config.json").read_text())
    assert (config["epochs"], config["swa_epochs"]) == (4, 2)
    assert "resume_epochs" not in [n.key for n in at.number_input], "the Resume panel stays open"
    assert at.multiselect(key=SELECTED).value == [OLD]
    assert f"Delete {OLD}" in labels(at) and f"Resume {OLD}" in labels(at)
    stop_jobs(workspace)
    click(at, f"Delete {OLD}")
    click(at, f"Confirm delete {OLD}")
    assert not stopped.exists() and finished.is_dir()
    assert (workspace / "runs" / resumed[0]).is_dir()


def test_make_active_shows_in_the_sidebar_on_the_same_rerun(workspace, trained_run):
    run = add_run(workspace, trained_run, NEW)
    at = open_page(workspace, "train")
    choose(at, NEW)
    click(at, f"Make {NEW} the active model")
    model = str(run / "model.keras")
    assert at.session_state[MODEL_KEY] == model
    assert at.sidebar.selectbox[0].value == model
    pages = "Evaluate, Predict, Mistakes, Feature map, Label issues, Compare, Region and Slides"  # issue 19 item 11
    assert any(f"{NEW} is now the active model of {pages}." in s.value for s in at.success)


def test_a_queued_job_says_it_waits_then_starts_instead_of_a_zero_progress(workspace, trained_run):
    run = add_run(workspace, trained_run, NEW)
    (run / "metrics.jsonl").unlink()
    write_status(run, "queued", pid=os.getpid(), phase=None, progress=None, best=None)
    at = open_page(workspace, "train")
    at.session_state["watched_run"] = str(run)
    at.run()
    assert not at.exception
    (progress,) = at.get("progress")
    assert progress.text == QUEUED_PHASE and progress.value == 0

    # running, tracing the model: the step counter is still at zero
    write_status(run, "running", phase="training", progress={"epoch": 0, "epochs": 1, "step": 0, "steps": 1})
    at.run()
    (progress,) = at.get("progress")
    assert progress.text == STARTING_TEXT

    write_status(run, "running", progress={"epoch": 1, "epochs": 2, "step": 1, "steps": 2, "eta_s": 60})
    at.run()
    (progress,) = at.get("progress")
    assert progress.text.startswith("epoch 1/2 · step 1/2") and progress.value == 25


@pytest.mark.parametrize("state", ["finished", "queued"])
def test_a_jobs_warning_shows_for_the_watched_run_and_in_the_table(workspace, trained_run, state):
    run = add_run(workspace, trained_run, NEW, state, warning=WARNING, pid=os.getpid())
    add_run(workspace, trained_run, OLD)
    at = open_page(workspace, "train")
    at.session_state["watched_run"] = str(run)
    at.run()
    assert not at.exception
    assert any(w.value == WARNING for w in at.warning)
    table = at.dataframe[-1].value.set_index("run")
    assert WARNING in table.loc[NEW, "warning"]
    assert pd.isna(table.loc[OLD, "warning"])


def test_a_stopped_resumed_run_says_where_it_stopped_and_what_it_continues(workspace, trained_run):
    run = add_run(
        workspace,
        trained_run,
        NEW,
        "stopped",
        note="stopped by the user",
        progress={"epoch": 2, "epochs": 6, "step": 10, "steps": 37},
        stopped_at={"epoch": 2, "step": 10, "steps": 37, "epochs_complete": 1},
        best={"epoch": 1, "val_auc": 0.9},
        resumed_from=OLD,
        first_epoch=2,
    )
    at = open_page(workspace, "train")
    at.session_state["watched_run"] = str(run)
    at.run()
    assert not at.exception
    (outcome,) = [w.value for w in at.warning if w.value.startswith("Stopped")]
    assert "in epoch 2 at step 10/37" in outcome and "1 of 6 epochs complete" in outcome
    assert "Best val AUC 0.9000 at epoch 1" in outcome
    assert f"Resumed from {OLD} at epoch 2: no complete epoch in this run" in outcome
    assert any(f"resumed from {OLD}" in m.value for m in at.markdown)
    row = at.dataframe[-1].value.set_index("run").loc[NEW]
    assert row["resumed from"] == OLD
    assert "(stopped in epoch 2 at step 10/37)" in row["epochs"]
