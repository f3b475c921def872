"""The Region page's overlay choice (AppTest of the real app): a heatmap folder with the spread of the
8 views (`core heatmap --uncertainty`) can show that layer instead of P(tumour); one without offers no
choice."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from page_helpers import open_page
from region_images import mosaic, write_png

from core.constants import DEFAULT_THRESHOLD, PCAM_MPP
from core.region.heatmap import run_heatmap
from core.region.jobs import job_key, output_dir, run_job
from core.region.outputs import cell_map, read_outputs
from ui.region_map import LAYER_KEY, SPREAD_LAYER, grid_of


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(10)[1]


def plotly_array(value) -> np.ndarray:
    """A plotly array as numpy: a list, or its typed-array form {dtype, bdata (base64), shape}."""
    if not isinstance(value, dict):
        return np.array(value, dtype=float)
    raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    shape = value.get("shape")
    if isinstance(shape, str):
        shape = [int(n) for n in shape.split(",")]
    return raw.reshape(shape).astype(float)


def heat_trace(at) -> dict:
    data = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    return next(trace for trace in data if trace["type"] == "heatmap")


def test_the_spread_layer_is_an_overlay_choice_only_when_the_run_kept_it(tmp_path, monkeypatch, model_path):
    from core.model.io import load_model

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    path = write_png(
        workspace / "mosaic.png", mosaic().pixels
    )  # as the Region page test: mpp set on the page
    assert (
        run_job(model_path, path, stride=96, mpp=PCAM_MPP, threshold=DEFAULT_THRESHOLD)["state"] == "finished"
    )
    at = open_page(workspace, "region", model=model_path)
    at.text_input(key="region_path").input(str(path)).run()
    at.number_input(key="region_mpp").set_value(PCAM_MPP).run()
    assert not at.exception, at.exception
    assert not [r for r in at.radio if r.key == LAYER_KEY]  # no spread kept: no choice
    assert heat_trace(at)["colorbar"]["title"]["text"] == "P(tumour)"

    folder = output_dir(job_key(model_path, path, stride=96, mpp=PCAM_MPP, threshold=DEFAULT_THRESHOLD))
    run_heatmap(
        load_model(model_path), path, folder, mpp=PCAM_MPP, uncertainty=True
    )  # what `heatmap --uncertainty` writes
    at.run()
    next(r for r in at.radio if r.key == LAYER_KEY).set_value(SPREAD_LAYER).run()
    assert not at.exception, at.exception
    trace, outputs = heat_trace(at), read_outputs(folder)
    assert trace["colorbar"]["title"]["text"] == SPREAD_LAYER
    expected = cell_map(outputs["spread"], outputs["quality"], grid_of(outputs["summary"]))
    np.testing.assert_allclose(plotly_array(trace["z"]), expected, atol=1e-6)
