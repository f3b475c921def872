"""The Region page (AppTest of the real app): choosing an image inside the data roots, its resolution,
a finished heatmap (map, area at the shared threshold, one tile with its probability, flags and
Grad-CAM, the tile outlined on the map), a running job's progress and Stop, found again from the URL
after a reload and in the list of jobs; uploads: a refused one said and not kept, a long name."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from page_helpers import PAGE_SCRIPTS, app_test, open_page
from region_images import BLANK_ROW, mosaic, write_png, write_zero_strip_tiff

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
    assert selected_box(at) == [col * 96, row * 96, (col + 1) * 96, (row + 1) * 96]  # outlined on the map
    captions = [c for image in at.get("image") for c in image.captions if c]
    assert any("the patch the model saw" in c for c in captions) and "Grad-CAM" in captions  # patch + heatmap
    at.number_input(key="region_row").set_value(BLANK_ROW).run()
    assert "This tile was not scored (glass/background)" in texts(at)
    assert selected_box(at) == [col * 96, BLANK_ROW * 96, (col + 1) * 96, (BLANK_ROW + 1) * 96]


def selected_box(at) -> list[float] | None:
    """[x0, y0, x1, y1] of the outline of the selected tile on the map, None when none is drawn."""
    import json

    shapes = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"].get("shapes", [])
    boxes = [[s["x0"], s["y0"], s["x1"], s["y1"]] for s in shapes if s.get("name") == "selected tile"]
    return boxes[0] if boxes else None


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


def open_with_url(workspace, model_path, params: dict):
    """A new session (a reload) of the Region page at a URL carrying `params`."""
    at = app_test()
    at.query_params.update(params)
    at.session_state["model_path"] = str(model_path)
    at.run()
    at.switch_page(PAGE_SCRIPTS["region"]).run()
    assert not at.exception, at.exception
    return at


def running_job(model_path, path, stride: int) -> str:
    """Mark the heatmap job of (model, path, stride) as running, 7 of 24 tiles done; returns its key."""
    key = job_key(model_path, path, stride=stride, mpp=PCAM_MPP, threshold=DEFAULT_THRESHOLD)
    job_dir(key).mkdir(parents=True)
    write_status(job_dir(key), "running", pid=os.getpid(), phase="scoring", done=7, total=24, patches_per_s=12.0,
                 eta_s=1.4, started=time.time(), image=str(path), model=str(model_path), stride=stride, mpp=PCAM_MPP)  # fmt: skip
    return key


def shows_progress(at) -> bool:
    return any("7/24" in (p.proto.text or "") for p in at.get("progress")) or "7/24" in texts(at)


def test_a_reload_finds_the_running_job_from_the_url(workspace, model_path):
    path = write_png(workspace / "mosaic.png", mosaic().pixels)  # no resolution: typed, and kept in the URL
    at = choose(open_page(workspace, "region", model=model_path), path)
    at.number_input(key="region_mpp").set_value(PCAM_MPP).run()
    at.selectbox(key="region_stride").set_value(48).run()
    assert at.query_params["region_image"] == str(path) and at.query_params["region_stride"] == "48"
    running_job(model_path, path, 48)
    reloaded = open_with_url(workspace, model_path, at.query_params)
    assert reloaded.text_input(key="region_path").value == str(path)
    assert reloaded.selectbox(key="region_stride").value == 48 and shows_progress(reloaded)


def test_running_and_recent_jobs_are_listed_and_open_again(workspace, model_path):
    path = write_png(workspace / "mosaic.png", mosaic().pixels, mpp=PCAM_MPP)
    running_job(model_path, path, 32)
    at = open_page(workspace, "region", model=model_path)
    listed = " ".join(e.value for e in at.markdown) + " ".join(c.value for c in at.caption)
    assert "mosaic.png" in listed and "stride 32" in listed and "running · 7/24 tiles" in listed
    assert "Heatmap jobs: 1 running" in [e.label for e in at.expander][0]
    next(b for b in at.button if b.key.startswith("region_open_")).click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="region_path").value == str(path) and shows_progress(at)


def test_a_refused_upload_says_why_and_is_not_kept(workspace, model_path, tmp_path):
    hostile = write_zero_strip_tiff(tmp_path / "strip.tif", 12_000, 12_000)  # 1 MB, 412 MB decoded
    at = open_page(workspace, "region", model=model_path)
    at.radio(key="region_source").set_value("upload").run()
    at.file_uploader(key="region_upload").set_value(("strip.tif", hostile.read_bytes(), "image/tiff")).run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "refused and was not kept" in errors and "412 MB of memory to decode" in errors
    assert str(workspace) not in errors
    uploads = workspace / "uploads" / "region"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_an_upload_with_a_200_character_unicode_name_opens(workspace, model_path, tmp_path):
    data = write_png(tmp_path / "m.png", mosaic().pixels, mpp=PCAM_MPP).read_bytes()
    name = "ganglion-" + "é" * 187 + ".png"  # 200 characters, 387 bytes: past a file name's 255
    at = open_page(workspace, "region", model=model_path)
    at.radio(key="region_source").set_value("upload").run()
    at.file_uploader(key="region_upload").set_value((name, data, "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("576 × 480 px" in c.value and c.value.startswith("ganglion-é") for c in at.caption)
    assert "Not computed yet" in texts(at)
