"""The prediction job of the Evaluate page (core.evaluate.jobs): a real process running a real tiny
model over real patches, found again by its cache key, stoppable, and read as failed when it dies."""

from __future__ import annotations

import subprocess
import sys

import pytest
from page_helpers import wait_for_job_end

from core.data.dataset import open_dataset
from core.evaluate.jobs import LOADING_PHASE, job_dir, job_key, launch, read_job, run_job, stop_job
from core.evaluate.predictions import (
    cached_predictions,
    default_prediction_cache_dir,
    prediction_cache_key,
    read_predictions,
)
from core.train.runs import write_status


@pytest.fixture(scope="module")
def model_and_data(tiny_kaggle_model):
    data, model = tiny_kaggle_model(5)
    return model, data


def test_a_launched_job_writes_the_cache_the_cli_reads(workspace, model_and_data):
    model, data = model_and_data
    dataset = open_dataset(data)
    key = launch(model, dataset)
    assert key == prediction_cache_key(model, dataset)
    assert read_job(key)["state"] in ("queued", "running")
    assert launch(model, dataset) == key  # a second session joins the running job
    job = wait_for_job_end(read_job, key)
    assert job["state"] == "finished", job
    assert job["done"] == job["total"] == 10
    stored = default_prediction_cache_dir() / f"{key}.csv"
    frame = read_predictions(stored)
    assert len(frame) == 10 and frame["prob"].between(0, 1).all()
    again = cached_predictions(model, dataset)  # what `python -m core evaluate` reads: no model call
    assert again.attrs["cached"] == str(stored)


def test_a_stop_request_ends_the_job_as_stopped_without_a_cache_file(workspace, model_and_data):
    model, data = model_and_data
    key = prediction_cache_key(model, open_dataset(data))
    job_dir(key).mkdir(parents=True)
    stop_job(key)
    status = run_job(model, data, key=key)
    assert status["state"] == "stopped" and not status.get("error")
    assert not (default_prediction_cache_dir() / f"{key}.csv").exists()


def test_a_features_job_stops_on_request_then_caches_what_the_feature_map_reads(workspace, model_and_data):
    from core.diagnose.features import cached_features, default_feature_cache_dir, feature_cache_key

    model, data = model_and_data
    dataset = open_dataset(data)
    key = job_key(model, dataset, features=True)
    assert key == feature_cache_key(model, dataset) != job_key(model, dataset)
    folder = default_feature_cache_dir()
    job_dir(key, folder).mkdir(parents=True)
    stop_job(key, folder)
    assert run_job(model, data, key=key, features=True)["state"] == "stopped"
    assert not (folder / f"{key}.npz").exists()

    job_dir(key, folder).joinpath("stop.request").unlink()
    status = run_job(model, data, features=True)  # as `python -m core predict-job MODEL DATA --features`
    assert status["state"] == "finished" and status["phase"] == "done", status
    assert read_job(key, folder)["done"] == 10
    found = cached_features(model, dataset)  # what the Feature map reads: from the job's file
    assert found.from_cache and found.cached == str(folder / f"{key}.npz") and len(found) == 10


def test_a_job_for_a_changed_dataset_fails_with_a_reason(workspace, model_and_data):
    model, data = model_and_data
    status = run_job(model, data, key="00000000000000000000dead")
    assert status["state"] == "failed" and "changed since this job was started" in status["error"]
    assert read_job("00000000000000000000dead")["state"] == "failed"


def test_a_missing_model_fails_with_a_reason(workspace, model_and_data, tmp_path):
    _, data = model_and_data
    status = run_job(tmp_path / "gone.keras", data, key="0000000000000000000000aa")
    assert status["state"] == "failed" and "gone.keras" in status["error"]
    assert read_job("0000000000000000000000aa")["error"] == status["error"]  # what the waiting page reads


def test_a_job_whose_process_died_reads_as_failed(workspace):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = job_dir("0000000000000000000000bb")
    folder.mkdir(parents=True)
    write_status(folder, "running", pid=dead.pid, phase=LOADING_PHASE)
    job = read_job("0000000000000000000000bb")
    assert job["state"] == "failed" and "ended without reporting" in job["error"]
    assert read_job("0000000000000000000000cc") is None
