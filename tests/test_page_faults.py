"""Pages keep working when what they show disappears: a run directory deleted while it is on screen."""

from __future__ import annotations

import shutil

import pytest
from page_helpers import PAGE_SCRIPTS, app_test, copy_workspace


@pytest.fixture()
def run_on_screen(tiny_run, tmp_path, monkeypatch):
    """A test's own copy of the session's real finished run (conftest.tiny_run), free to delete: a
    copy instead of a run trained per test."""
    workspace, run_dir = copy_workspace(tiny_run, tmp_path)
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    return run_dir


def test_train_page_survives_the_watched_run_being_deleted(run_on_screen):
    at = app_test()
    at.session_state["watched_run"] = str(run_on_screen)
    at.switch_page(PAGE_SCRIPTS["train"])
    at.run()
    assert not at.exception
    assert any(s.value.startswith("Finished") for s in at.success)
    shutil.rmtree(run_on_screen)
    at.run()
    assert not at.exception
    assert any("no longer exists" in w.value for w in at.warning)
    assert any("No runs yet" in c.value for c in at.caption)


def test_evaluate_page_survives_the_chosen_run_being_deleted(run_on_screen):
    at = app_test()
    at.session_state["prediction_source_kind"] = "run"  # the default is the sidebar's model
    at.switch_page(PAGE_SCRIPTS["evaluate"])
    at.run()
    assert not at.exception
    assert at.metric, "metric cards for the run's validation predictions"
    shutil.rmtree(run_on_screen)
    at.run()
    assert not at.exception
    assert not at.metric
    assert any("No run has stored validation predictions" in i.value for i in at.info)
