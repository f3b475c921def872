"""Per-tile uncertainty of a heatmap and a cohort (`--uncertainty`): the spread of each tile's 8
dihedral views as spread.npy, a GeoJSON measurement, and the count of uncertain tumour tiles in
summary.json and slides.csv; without the option nothing of it appears. A real tiny model over real
patches (tests/region_images.py, tests/slides_cohort.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from region_images import BLANK_ROW, mosaic, write_png
from slides_cohort import GOOD, build_cohort

from core.cli import main
from core.constants import PCAM_MPP
from core.evaluate.predict import predict_patches_spread
from core.evaluate.uncertainty import UNCERTAIN_SPREAD
from core.region.outputs import SPREAD_FILE, n_uncertain_tumour, read_outputs
from core.slides.cohort import run_cohort
from core.slides.task import SlideOptions, task_key


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(10)[1]


@pytest.fixture(scope="module")
def image():
    return mosaic()


@pytest.fixture(scope="module")
def png(image, tmp_path_factory):
    return write_png(tmp_path_factory.mktemp("tile-unc") / "mosaic.png", image.pixels, mpp=PCAM_MPP)


@pytest.fixture(scope="module")
def expected(model_path, image):
    """(8-view mean, spread) of the mosaic's patches, computed patch by patch."""
    from core.model.io import load_model

    return predict_patches_spread(load_model(model_path), image.patches)


def heatmap(model_path, png, out, *extra) -> dict:
    threshold = ["--threshold", "0.5"]
    assert main(["heatmap", str(model_path), str(png), "--out", str(out), *threshold, *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def tile_measurements(out) -> list[dict]:
    features = json.loads((out / "tiles.geojson").read_text())["features"]
    return [feature["properties"]["measurements"] for feature in features]


def test_the_spread_layer_is_the_8_view_spread_of_each_tile(model_path, png, image, expected, tmp_path):
    summary = heatmap(model_path, png, tmp_path, "--uncertainty")
    outputs = read_outputs(tmp_path)
    spread, probabilities = outputs["spread"], outputs["probabilities"]
    assert spread.shape == probabilities.shape == (5, 6)
    mean, views_spread = expected
    np.testing.assert_allclose([spread[cell] for cell in image.cells], views_spread, atol=1e-5)
    np.testing.assert_allclose([probabilities[cell] for cell in image.cells], mean, atol=1e-5)
    assert np.isnan(spread[BLANK_ROW]).all()  # not scored: no spread
    assert summary["uncertainty"] is True and summary["uncertain_spread"] == UNCERTAIN_SPREAD
    hand = sum(p >= 0.5 and s >= UNCERTAIN_SPREAD for p, s in zip(mean, views_spread, strict=True))
    assert summary["n_uncertain_tumour"] == hand


def test_each_tile_carries_its_spread_as_a_geojson_measurement(model_path, png, tmp_path):
    heatmap(model_path, png, tmp_path, "--uncertainty")
    outputs = read_outputs(tmp_path)
    scored = ~np.isnan(outputs["probabilities"])
    measured = tile_measurements(tmp_path)
    assert len(measured) == int(scored.sum())
    np.testing.assert_allclose([m["spread"] for m in measured], outputs["spread"][scored], atol=1e-6)


def test_without_the_option_there_is_no_layer_even_in_a_folder_that_had_one(model_path, png, tmp_path):
    heatmap(model_path, png, tmp_path, "--uncertainty")
    summary = heatmap(model_path, png, tmp_path)  # the same folder, scored again without it
    assert not (tmp_path / SPREAD_FILE).exists()
    assert read_outputs(tmp_path)["spread"] is None
    assert "n_uncertain_tumour" not in summary and "uncertainty" not in summary
    assert all(set(m) == {"probability"} for m in tile_measurements(tmp_path))


def test_the_uncertain_tumour_count_needs_both_the_threshold_and_the_spread():
    probabilities = np.array([[0.9, 0.9, 0.2, np.nan]], dtype=np.float32)
    spread = np.array([[UNCERTAIN_SPREAD, 0.01, 0.2, np.nan]], dtype=np.float32)
    assert n_uncertain_tumour(probabilities, spread, 0.5) == 1
    assert n_uncertain_tumour(probabilities, spread, 0.95) == 0


def test_the_option_is_in_the_slide_key_and_absent_from_the_key_without_it(model_path, tmp_path):
    slide = write_png(tmp_path / "s.png", mosaic().pixels, mpp=PCAM_MPP)
    plain, uncertain = SlideOptions(), SlideOptions(uncertainty=True)
    assert task_key(model_path, slide, plain, None) != task_key(model_path, slide, uncertain, None)
    assert "uncertainty" not in plain.described() and uncertain.described()["uncertainty"] is True


def test_a_cohort_with_uncertainty_recomputes_and_counts_uncertain_tumour_tiles(model_path, tmp_path):
    cohort = build_cohort(tmp_path / "cohort")
    out = tmp_path / "out"
    run_cohort(model_path, [cohort["slides"]], out)
    assert "n_uncertain_tumour" not in pd.read_csv(out / "slides.csv").columns  # without it: unchanged
    run_cohort(model_path, [cohort["slides"]], out, options=SlideOptions(uncertainty=True))
    table = pd.read_csv(out / "slides.csv").set_index("slide")
    assert set(table.loc[list(GOOD), "status"]) == {"done"}  # the changed option recomputed them
    for slide in GOOD:
        outputs = read_outputs(out / slide)
        hand = n_uncertain_tumour(
            outputs["probabilities"], outputs["spread"], outputs["summary"]["threshold"]
        )
        assert table.loc[slide, "n_uncertain_tumour"] == hand == outputs["summary"]["n_uncertain_tumour"]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    run_cohort(model_path, [cohort["slides"]], copy, options=SlideOptions(uncertainty=True))
    assert set(pd.read_csv(copy / "slides.csv").set_index("slide").loc[list(GOOD), "status"]) == {"cached"}
