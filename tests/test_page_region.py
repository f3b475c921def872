"""The Region page (AppTest of the real app): choosing an image inside the data roots, its resolution,
a finished heatmap (map, area at the shared threshold, one tile with its probability, flags and
Grad-CAM), and a running job's progress and Stop."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from page_helpers import open_page
from region_images import BLANK_ROW, mosaic, write_png

from core.constants import DEFAULT_THRESHOLD, PCAM_MPP
from core.region.jobs import job_dir, job_key, output_dir, run_job
from core.train.runs import write_status


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(5)[1]


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    (tmp_path / "workspace").mkdir()
    return tmp_path / "workspace"


def choose(at, path):
    at.text_input(key="region_path").input(str(path)).run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])


def test_a_path_outside_the_data_roots_is_refused(workspace, model_path, tmp_path):
    outside = write_png(tmp_path / "outside.png", mosaic().pixels, mpp=PCAM_MPP)
    at = choose(open_page(workspace, "region", model=model_path), outside)
    assert any("outside the data roots" in e.value for e in at.error)


def test_a_finished_heatmap_shows_the_map_the_area_and_a_tile(workspace, model_path):
    image = mosaic()
    path = write_png(workspace / "mosaic.png", image.pixels)  # no resolution in the file
    at = choose(open_page(workspace, "region", model=model_path), path)
    assert any("does not say how many µm" in w.value for w in at.warning)
    at.number_input(key="region_mpp").set_value(PCAM_MPP).run()
    assert "Not computed yet" in texts(at) and at.button(key="region_start")
    status = run_job(model_path, path, stride=96, mpp=PCAM_MPP, threshold=DEFAULT_THRESHOLD)  # what it starts
    assert status["state"] == "finished", status
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
    probabilities = np.load(output_dir(job_key(model_path, path, stride=96, mpp=PCAM_MPP,
                                               threshold=DEFAULT_THRESHOLD)) / "probabilities.npy")  # fmt: skip
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tiles scored"] == "24"
    row, col = image.cells[3]
    at.number_input(key="region_row").set_value(row)
    at.number_input(key="region_col").set_value(col).run()
    assert not at.exception, at.exception
    assert f"P(tumour) {probabilities[row, col]:.4f}" in texts(at)
    captions = [c for image in at.get("image") for c in image.captions if c]
    assert any("the patch the model saw" in c for c in captions) and "Grad-CAM" in captions  # patch + heatmap
    at.number_input(key="region_row").set_value(BLANK_ROW).run()
    assert "was not scored" in texts(at)


def test_a_running_job_shows_its_progress_and_stops(workspace, model_path):
    path = write_png(workspace / "mosaic.png", mosaic().pixels, mpp=PCAM_MPP)
    at = choose(open_page(workspace, "region", model=model_path), path)
    assert not at.warning  # the file carries its resolution: no input needed
    from core.region.reader import open_region_image

    with open_region_image(path) as region:
        key = job_key(model_path, path, stride=96, mpp=float(region.mpp), threshold=DEFAULT_THRESHOLD)
    job_dir(key).mkdir(parents=True)
    write_status(job_dir(key), "running", pid=os.getpid(), phase="scoring", done=7, total=24,
                 patches_per_s=12.0, eta_s=1.4, started=time.time())  # fmt: skip
    at.run()
    assert not at.exception, at.exception
    assert any("7/24" in (p.proto.text or "") for p in at.get("progress")) or "7/24" in texts(at)
    at.button(key="region_stop").click().run()
    assert (job_dir(key) / "stop.request").exists()
