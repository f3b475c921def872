"""core.train.runs views for the Train page: the progress of a job in words, which file a run offers
for use and which it resumes from, and which runs can be resumed."""

from __future__ import annotations

import pytest

from core.model.io import CHECKPOINT_FILE, FINAL_MODEL_FILE, run_checkpoint_path, run_model_path
from core.train.runs import STARTING_TEXT, run_progress, summarize_run, write_status


@pytest.mark.parametrize(
    "status",
    [
        {"state": "queued"},
        {"state": "queued", "progress": {"epoch": 0, "epochs": 10, "step": 0, "steps": 0}},
        {"state": "running", "phase": "starting"},
        {"state": "running", "phase": "building the model"},
        {
            "state": "running",
            "phase": "training",
            "progress": {"epoch": 0, "epochs": 1, "step": 0, "steps": 1},
        },
    ],
)
def test_before_the_first_batch_the_job_is_starting(status):
    fraction, text = run_progress(status)
    assert (fraction, text) == (0.0, STARTING_TEXT)


def test_a_data_phase_before_training_is_named():
    assert run_progress({"state": "running", "phase": "preparing data"}) == (0.0, "preparing data…")


def test_progress_counts_epochs_and_steps():
    status = {
        "state": "running",
        "phase": "training",
        "progress": {"epoch": 2, "epochs": 4, "step": 3, "steps": 6, "patches_per_s": 123.4, "eta_s": 90},
    }
    fraction, text = run_progress(status)
    assert fraction == pytest.approx(1.5 / 4)
    assert text == "epoch 2/4 · step 3/6 · 123 patches/s · ETA 1.5 min"


def test_after_the_last_batch_the_phase_follows_the_count():
    status = {
        "state": "running",
        "phase": "predicting the validation set",
        "progress": {"epoch": 2, "epochs": 2, "step": 5, "steps": 5},
    }
    fraction, text = run_progress(status)
    assert fraction == 1.0 and text.endswith("· predicting the validation set…")


def make_run(tmp_path, state: str, files: tuple[str, ...]):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"epochs": 2, "data": []}')
    write_status(run_dir, state)
    for name in files:
        (run_dir / name).write_bytes(b"keras zip")
    return run_dir


def test_a_run_offers_its_final_model_and_resumes_from_its_best_checkpoint(tmp_path):
    run_dir = make_run(tmp_path, "stopped", (CHECKPOINT_FILE, FINAL_MODEL_FILE))
    assert run_model_path(run_dir) == run_dir / FINAL_MODEL_FILE
    assert run_checkpoint_path(run_dir) == run_dir / CHECKPOINT_FILE


@pytest.mark.parametrize(
    ("state", "files", "resumable"),
    [
        ("stopped", (CHECKPOINT_FILE,), True),
        ("failed", (FINAL_MODEL_FILE,), True),
        ("failed", (), False),
        ("finished", (CHECKPOINT_FILE, FINAL_MODEL_FILE), False),
    ],
)
def test_resumable_means_failed_or_stopped_with_a_checkpoint(tmp_path, state, files, resumable):
    assert summarize_run(make_run(tmp_path, state, files)).resumable is resumable


def test_a_jobs_warning_reaches_the_summary(tmp_path):
    run_dir = make_run(tmp_path, "finished", ())
    assert summarize_run(run_dir).warning is None
    write_status(run_dir, "finished", warning="validation at chance")
    assert summarize_run(run_dir).warning == "validation at chance"
