"""Heatmap jobs (core.region.jobs, `python -m core heatmap-job`): a real process scoring a real mosaic
with a real tiny model, found again by its key, stoppable, failing with a reason."""

from __future__ import annotations

import pytest
from page_helpers import wait_for_job_end
from region_images import mosaic, write_png

from core.constants import PCAM_MPP
from core.region.jobs import job_dir, launch, output_dir, read_job, run_job, stop_job
from core.region.outputs import read_outputs


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory, tiny_kaggle_model):
    _, model = tiny_kaggle_model(5)
    image = write_png(tmp_path_factory.mktemp("region-jobs") / "mosaic.png", mosaic().pixels)
    return model, image  # no resolution in the file


def test_a_launched_job_writes_the_outputs_and_is_joined_not_restarted(workspace, model_and_image):
    model, image = model_and_image
    settings = {"stride": 96, "mpp": PCAM_MPP, "threshold": 0.5}
    key = launch(model, image, **settings)
    assert read_job(key)["state"] in ("queued", "running")
    assert launch(model, image, **settings) == key  # a second session (or a reload) joins it
    job = wait_for_job_end(read_job, key)
    assert job["state"] == "finished", (job, (job_dir(key) / "job.log").read_text()[-2000:])
    assert job["done"] == job["total"] == 24 and job["summary"]["n_scored"] == 24
    assert read_outputs(output_dir(key))["probabilities"].shape == (5, 6)


def test_a_stop_request_ends_the_job_as_stopped_without_outputs(workspace, model_and_image):
    model, image = model_and_image
    settings = {"stride": 96, "mpp": PCAM_MPP, "threshold": 0.5}
    from core.region.jobs import job_key

    key = job_key(model, image, **settings)
    job_dir(key).mkdir(parents=True)
    stop_job(key)
    status = run_job(model, image, key=key, **settings)
    assert status["state"] == "stopped" and not status.get("error")
    assert read_outputs(output_dir(key)) is None


def test_an_image_without_resolution_fails_with_the_reason(workspace, model_and_image):
    model, image = model_and_image
    status = run_job(model, image, stride=96, mpp=None, threshold=0.5)
    assert status["state"] == "failed" and "--mpp" in status["error"]
