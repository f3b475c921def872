"""core.train.runs views for the Train page: the progress of a job in words, which file a run offers
for use and which it resumes from, and which runs can be resumed."""

from __future__ import annotations

import pytest

from core.jobs.status import QUEUED_PHASE
from core.model.io import CHECKPOINT_FILE, FINAL_MODEL_FILE, run_checkpoint_path, run_model_path
from core.train.runs import STARTING_TEXT, run_progress, summarize_run, write_status


@pytest.mark.parametrize(
    "status",
    [
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


@pytest.mark.parametrize(
    "status",
    [{"state": "queued"}, {"state": "queued", "progress": {"epoch": 0, "epochs": 10, "step": 0, "steps": 0}}],
)
def test_a_queued_job_says_it_waits_for_a_worker(status):
    assert run_progress(status) == (0.0, QUEUED_PHASE)


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


# ---------------------------------------------------------------- ETA, outcome, legend (issue 19.7)


def test_the_eta_comes_from_the_measured_pace_not_the_warm_up():
    """The reported case: the first step of epoch 1 (tracing) and of each later epoch (the pipeline
    refilling after validation) took far longer than the rest; the ETA must follow the steady pace
    plus the measured validation, and say nothing before a steady step is timed."""
    from core.train.pace import Pace

    pace = Pace(epochs=6, steps_per_epoch=37, validation_batches=4)
    clock = 0.0
    pace.step_ended(1, clock := clock + 30.0)  # step 1 of epoch 1: tracing
    assert pace.eta_s(1, 1) is None
    for step in range(2, 38):
        pace.step_ended(step, clock := clock + 0.25)
    pace.validation_ended(3.0)
    pace.step_ended(1, clock := clock + 20.0)  # step 1 of epoch 2: warm-up again
    # 36 steps of epoch 2 and 4 x 37 steps after it at 0.25 s, and 5 validations of 3 s
    assert pace.eta_s(2, 1) == pytest.approx((36 + 4 * 37) * 0.25 + 5 * 3.0)
    assert pace.eta_s(6, 37) == pytest.approx(3.0)  # the last validation is all that is left


def test_before_a_validation_is_timed_it_is_estimated_as_a_forward_pass():
    from core.train.pace import FORWARD_SHARE, Pace

    pace = Pace(epochs=2, steps_per_epoch=10, validation_batches=6)
    for step in (1, 2, 3):
        pace.step_ended(step, float(step))
    assert pace.eta_s(1, 3) == pytest.approx((7 + 10) * 1.0 + 2 * 6 * 1.0 * FORWARD_SHARE)


def test_an_eta_not_yet_measured_is_said_in_words():
    status = {"state": "running", "progress": {"epoch": 1, "epochs": 2, "step": 1, "steps": 9, "eta_s": None}}
    assert run_progress(status)[1].endswith("ETA after a few steps")


STOPPED = {
    "state": "stopped",
    "note": "stopped by the user",
    "duration_s": 90,
    "progress": {"epoch": 2, "epochs": 6, "step": 10, "steps": 37},
    "stopped_at": {"epoch": 2, "step": 10, "steps": 37, "epochs_complete": 1},
    "best": {"epoch": 1, "val_auc": 0.91234},
}


def test_a_stopped_run_says_where_it_stopped_how_many_epochs_are_complete_and_its_best():
    from core.train.views import outcome_words

    words = outcome_words(STOPPED)
    assert words.startswith("Stopped (stopped by the user) in epoch 2 at step 10/37 after 1.5 min")
    assert "1 of 6 epochs complete" in words
    assert "Best val AUC 0.9123 at epoch 1" in words


def test_a_resumed_run_says_what_it_continues_in_the_original_numbering():
    from core.train.views import outcome_words

    status = {
        "state": "finished",
        "duration_s": 60,
        "resumed_from": "20261205-101500-patchnet",
        "first_epoch": 2,
        "progress": {"epoch": 6, "epochs": 6, "step": 37, "steps": 37},
        "best": {"epoch": 5, "val_auc": 0.95},
    }
    words = outcome_words(status)
    assert "Finished in 1.0 min: 6/6 epochs." in words
    assert "Resumed from 20261205-101500-patchnet at epoch 2: epochs 2–6 in this run." in words
    assert "Best val AUC 0.9500 at epoch 5" in words


BATCH = {"kind": "batch", "epoch": 1, "step": 5, "steps": 10, "loss": 0.6, "accuracy": 0.7}


def test_the_legend_says_running_only_while_the_run_runs():
    from core.train.views import RUNNING, curves_long

    assert set(curves_long([BATCH], running=True)["split"]) == {RUNNING}
    assert RUNNING not in set(curves_long([BATCH], running=False)["split"])


def test_a_stopped_part_epoch_is_a_marked_training_point_without_validation():
    from core.train.views import PARTIAL, curves_long

    partial = {"kind": "partial_epoch", "epoch": 2, "step": 10, "steps": 40, "loss": 0.5, "accuracy": 0.8}
    curves = curves_long([partial])
    assert set(curves["split"]) == {PARTIAL}
    assert set(curves["epoch"]) == {1.25}  # where in epoch 2 it stopped, not at a whole epoch


def test_the_first_validation_which_traces_is_left_out_once_others_are_timed():
    from core.train.pace import Pace

    pace = Pace(epochs=3, steps_per_epoch=2, validation_batches=1)
    pace.step_ended(1, 0.0)
    pace.step_ended(2, 1.0)
    pace.validation_ended(80.0)  # epoch 1: tracing the evaluation
    assert pace.eta_s(2, 2) == pytest.approx(2 * 1.0 + 2 * 80.0)
    pace.validation_ended(18.0)
    assert pace.eta_s(3, 2) == pytest.approx(18.0)
