"""The heatmap run and its outputs (core.region.heatmap/outputs, `python -m core heatmap`): a real tiny
model over a mosaic of real patches, as PNG, as a pyramidal TIFF and through OpenSlide."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from region_images import BLANK_ROW, mosaic, write_png, write_pyramid_tiff

from core.cli import main
from core.constants import IMAGE_SIZE, PCAM_MPP
from core.evaluate.predict import predict_patches
from core.region.heatmap import HeatmapStopped, run_heatmap
from core.region.outputs import OUTPUT_FILES, read_outputs


@pytest.fixture(scope="module")
def image():
    return mosaic()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, fit_tiny_model, sample_dir):
    from page_helpers import copy_kaggle_subset

    root = tmp_path_factory.mktemp("region-model")
    return fit_tiny_model(copy_kaggle_subset(root / "data", 10), root / "tiny.keras")


@pytest.fixture(scope="module")
def model(model_path):
    from core.model.io import load_model

    return load_model(model_path)


@pytest.fixture(scope="module")
def files(image, tmp_path_factory):
    root = tmp_path_factory.mktemp("region-files")
    return {
        "png": write_png(root / "mosaic.png", image.pixels, mpp=PCAM_MPP),
        "tiff": write_pyramid_tiff(root / "mosaic.tif", image.pixels),
    }


@pytest.mark.parametrize("kind,backend", [("png", "auto"), ("tiff", "auto"), ("tiff", "openslide")])
def test_at_stride_96_the_map_reproduces_the_per_patch_predictions(
    image, model, files, tmp_path, kind, backend
):
    summary = run_heatmap(model, files[kind], tmp_path, backend=backend, batch_size=7)  # batches span rows
    outputs = read_outputs(tmp_path)
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (5, 6) and summary["grid"] == [5, 6]
    expected = predict_patches(model, image.patches)
    got = np.array([probabilities[cell] for cell in image.cells])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.isnan(probabilities[BLANK_ROW]).all()  # the glass band is never scored
    assert summary["n_scored"] == len(image.patches) and summary["n_tiles"] == 30
    assert summary["reader"] == (
        "openslide" if backend == "openslide" else ("pillow" if kind == "png" else "tifffile")
    )


def test_the_outputs_say_where_each_tile_is_and_how_much_is_tumour(image, model, files, tmp_path):
    threshold = float(np.median(predict_patches(model, image.patches)))
    summary = run_heatmap(model, files["tiff"], tmp_path, threshold=threshold)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUT_FILES)
    probabilities = np.load(tmp_path / "probabilities.npy")
    above = int(np.sum(probabilities >= threshold))
    tile_mm2 = (IMAGE_SIZE * PCAM_MPP / 1000) ** 2
    assert summary["tumour_area_mm2"] == pytest.approx(above * tile_mm2, rel=1e-4)
    assert summary["mpp"] == pytest.approx(PCAM_MPP) and summary["stride"] == 96
    assert {"image", "width", "height", "grid", "n_tiles", "n_scored", "seconds"} <= set(summary)
    features = json.loads((tmp_path / "tiles.geojson").read_text())["features"]
    assert len(features) == summary["n_scored"]
    row, col = image.cells[5]
    x, y = col * IMAGE_SIZE, row * IMAGE_SIZE
    ring = [[x, y], [x + 96, y], [x + 96, y + 96], [x, y + 96], [x, y]]
    found = [f for f in features if f["geometry"]["coordinates"][0] == ring]
    assert len(found) == 1 and found[0]["properties"]["objectType"] == "detection"
    assert found[0]["properties"]["probability"] == pytest.approx(float(probabilities[row, col]), abs=1e-6)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    assert overlay.shape[1] == image.pixels.shape[1] and overlay.shape[0] > image.pixels.shape[0]


def test_a_smaller_stride_averages_overlapping_tiles(image, model, files, tmp_path):
    summary = run_heatmap(model, files["png"], tmp_path, stride=48)
    probabilities = np.load(tmp_path / "probabilities.npy")
    assert probabilities.shape == (9, 11) and summary["grid"] == [9, 11]
    # Tile (2, 2) at stride 48 is exactly patch (1, 1) of the mosaic.
    expected = predict_patches(model, image.pixels[96:192, 96:192])[0]
    assert probabilities[2, 2] == pytest.approx(float(expected), abs=1e-5)


def test_a_stop_request_ends_the_run_before_any_output(model, files, tmp_path):
    with pytest.raises(HeatmapStopped):
        run_heatmap(model, files["png"], tmp_path, should_stop=lambda: True)
    assert not (tmp_path / "summary.json").exists()


def test_the_cli_writes_the_outputs(model_path, files, tmp_path, capsys):
    assert main(["heatmap", str(model_path), str(files["tiff"]), "--out", str(tmp_path / "out")]) == 0
    assert "tiles scored" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.json").is_file()


@pytest.mark.parametrize(
    "name,content",
    [("slide.svs", b"plain text named like a slide\n"), ("cut.tif", None), ("tiny.png", "small")],
)
def test_the_cli_refuses_a_bad_image_in_one_line_with_exit_2(
    model_path, files, image, tmp_path, capsys, name, content
):
    path = tmp_path / name
    if content is None:
        data = files["tiff"].read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif content == "small":
        write_png(path, image.pixels[:90, :300], mpp=PCAM_MPP)
    else:
        path.write_bytes(content)
    assert main(["heatmap", str(model_path), str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and len(error.splitlines()) == 1, error
    assert not (tmp_path / "out").exists()


def test_the_model_resolution_comes_from_its_metadata(model, model_path, files, tmp_path):
    from core.model.io import read_model_meta

    assert read_model_meta(model_path)["mpp"] == PCAM_MPP  # stored by save_model
    saved = model.patchlens_meta
    model.patchlens_meta = {**saved, "mpp": PCAM_MPP / 2}  # a model of twice the magnification
    try:
        summary = run_heatmap(model, files["png"], tmp_path)
    finally:
        model.patchlens_meta = saved
    assert summary["model_mpp"] == PCAM_MPP / 2 and summary["grid"] == [10, 12]  # 960 x 1152 model px
