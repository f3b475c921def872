"""A background job's damaged status.json (prediction, features, heatmap) reads as a failed job that says
what is damaged, on the pages and in core, never as a traceback (issue 24 item 3, the job files)."""

from __future__ import annotations

import json

import pytest
from page_helpers import copy_kaggle_subset, open_page

DAMAGED = {
    "a list": [],
    "a string": "x",
    "a number": 1,
    "a text heartbeat and pid": {"state": "running", "heartbeat": "soon", "pid": "abc"},
    "a state that is a number": {"state": 5, "done": "half", "total": [1]},
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_job_status_reads_as_failed_in_words(workspace, content):
    from core.evaluate.jobs import job_dir, read_job

    folder = job_dir("00000000000000000000000d")
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps(content))
    job = read_job(folder.name)
    assert job["state"] == "failed"
    assert job["error"].startswith("damaged: status.json")
    assert isinstance(job["heartbeat"], float) and job["pid"] is None


def test_a_job_status_with_extra_fields_keeps_them(workspace):
    from core.evaluate.jobs import job_dir, read_job

    folder = job_dir("00000000000000000000000e")
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "finished", "image": "a.png", "done": 4}))
    job = read_job(folder.name)
    assert job["state"] == "finished" and job["image"] == "a.png" and job["done"] == 4
    assert not job.get("damaged") and job["error"] is None


@pytest.mark.parametrize("content", [[], "x", {"state": "running", "heartbeat": "soon", "pid": "abc"}])
def test_evaluate_shows_a_damaged_job_in_words_and_can_run_it_again(workspace, page_model, tmp_path, content):
    from core.data.dataset import open_dataset
    from core.evaluate.jobs import job_dir
    from core.evaluate.predictions import prediction_cache_key

    data = copy_kaggle_subset(tmp_path / "data", 4)
    folder = job_dir(prediction_cache_key(page_model, open_dataset(data)))
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps(content))
    at = open_page(workspace, "evaluate", model=page_model, dataset=data)
    assert not at.exception
    assert any("damaged" in error.value for error in at.error)
    assert at.button(key="start_prediction_job")


def test_the_region_page_opens_with_a_damaged_heatmap_job(workspace):
    from core.region.jobs import region_cache_dir

    folder = region_cache_dir() / "jobs" / "00000000000000000000000f"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text('"x"')
    at = open_page(workspace, "region")
    assert not at.exception
