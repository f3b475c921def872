"""Issue 24, item 6: job keys and output files are checked before anything runs or is written, two
clicks at once start one prediction job, and a failed job says why in one line, without a traceback."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from page_helpers import copy_kaggle_subset

from core.data.dataset import open_dataset


@pytest.fixture()
def labelled(tmp_path) -> Path:
    return copy_kaggle_subset(tmp_path / "data", 3)


def test_four_sessions_clicking_at_once_start_one_job(workspace, labelled, page_model):
    from core.evaluate.jobs import launch, stop_job

    dataset = open_dataset(labelled)
    barrier = threading.Barrier(4)
    keys: list[str] = []

    def click() -> None:
        barrier.wait()
        keys.append(launch(page_model, dataset))

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 300
    while not (started := _tasks_for(keys[0])) and time.monotonic() < deadline:
        time.sleep(0.5)  # the submission reaches the scheduler a moment after launch returns
    time.sleep(2)  # any second submission, sent with the first, has arrived too
    started = _tasks_for(keys[0])
    stop_job(keys[0])  # the engine's task for it (core.jobs.engine), asked to stop
    assert len(set(keys)) == 1 and len(started) == 1, started


def _tasks_for(job_key: str) -> set[str]:
    """The tasks the job engine's Dask scheduler has seen for the job `job_key` (its transition log
    keeps finished ones too)."""
    from core.jobs import engine

    return {name for name in engine.client().run_on_scheduler(_task_names) if job_key in name}


def _task_names(dask_scheduler) -> list[str]:
    return [str(entry[0]) for entry in dask_scheduler.transition_log]


@pytest.mark.parametrize("key", ["../..", "../../evil", "ABC", "/tmp/x"])
def test_a_key_that_is_not_a_hash_is_refused_before_anything_is_written(
    workspace, labelled, page_model, run_cli, capsys, key
):
    with pytest.raises(SystemExit) as exit_status:
        run_cli("predict-job", page_model, labelled, "--key", key)
    assert exit_status.value.code == 2
    assert "a job key is 8 to 64 lower-case hex digits" in capsys.readouterr().err
    assert not workspace.exists()  # no status.json anywhere, inside the cache or outside it


def test_a_failed_job_says_why_in_one_line_without_a_traceback(workspace, labelled, tmp_path, run_cli):
    code, stdout, stderr = run_cli("predict-job", tmp_path / "gone.keras", labelled, "--key", "ab" * 12)
    assert code == 1
    assert "Traceback" not in stdout + stderr
    assert stderr.startswith("failed: ") and "gone.keras" in stderr and stderr.count("\n") == 1


def test_calibrate_refuses_to_overwrite_without_force(small_kaggle, page_model, tmp_path, run_cli):
    out = tmp_path / "calibrated.keras"
    out.write_bytes(b"someone's file")
    code, _, stderr = run_cli("calibrate", page_model, small_kaggle, "--out", out)
    assert code == 2 and "already exists; pass --force" in stderr and "scoring" not in stderr
    assert out.read_bytes() == b"someone's file"
    code, _, stderr = run_cli("calibrate", page_model, small_kaggle, "--out", out, "--force")
    assert code == 0, stderr
    assert out.read_bytes() != b"someone's file"


def test_calibrate_never_overwrites_its_own_model_even_with_force(labelled, page_model, tmp_path, run_cli):
    model = tmp_path / "model.keras"
    model.write_bytes(page_model.read_bytes())
    code, _, stderr = run_cli("calibrate", model, labelled, "--out", model, "--force")
    assert code == 2 and "is the model being calibrated" in stderr and "scoring" not in stderr
    assert model.read_bytes() == page_model.read_bytes()


def test_out_of_a_run_model_is_refused_before_computing(tiny_run, labelled, page_model, run_cli, capsys):
    _, run_dir = tiny_run
    best = run_dir / "best.keras"
    before = best.read_bytes() if best.exists() else None
    with pytest.raises(SystemExit) as exit_status:
        run_cli("calibrate", page_model, labelled, "--out", best, "--force")
    assert exit_status.value.code == 2
    assert "is a run's model; PatchLens never writes over it" in capsys.readouterr().err
    assert (best.read_bytes() if best.exists() else None) == before


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "{model}", "{data}", "--out"],
        ["embed", "{model}", "{data}", "--out"],
        ["label-issues", "{model}", "{data}", "--out"],
        ["calibrate", "{model}", "{data}", "--out"],
    ],
)
def test_an_out_that_cannot_be_written_is_refused_before_computing(
    labelled, page_model, tmp_path, run_cli, capsys, command
):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    argv = [part.format(model=page_model, data=labelled) for part in command] + [a_file / "out.csv"]
    with pytest.raises(SystemExit) as exit_status:
        run_cli(*argv)
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert f"{a_file} is a file, not a folder" in error and "patches/s" not in error
