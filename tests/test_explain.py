"""Heatmaps, overlays and the `explain` command, on a tiny CNN trained for seconds on real patches.

Real TensorFlow and tf-keras-vis throughout, no mocks. The model is trained once per module on
96 patches of the bundled sample (48 tumour, 48 normal); it reaches ~75% training accuracy, enough
for gradients that vary across a patch and differ between patches.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.constants import CENTRE_BOX, PATCH_SHAPE
from core.errors import PatchError
from core.evaluate.explain import METHODS, Explainer
from core.evaluate.heatmaps import (
    BOX_COLOUR,
    COLOUR_BAR_HEIGHT,
    colormap_table,
    colour_bar,
    normalise,
    overlay,
    resize_to_patch,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_DIR / "data" / "sample"
PER_CLASS = 48


def read_patch(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


@pytest.fixture(scope="module")
def sample():
    """96 real patches (first 48 tumour, then 48 normal), their labels and file paths."""
    with open(SAMPLE / "train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tumour = [row["id"] for row in rows if row["label"] == "1"][:PER_CLASS]
    normal = [row["id"] for row in rows if row["label"] == "0"][:PER_CLASS]
    paths = [SAMPLE / "train" / f"{name}.tif" for name in tumour + normal]
    patches = np.stack([read_patch(path) for path in paths])
    labels = np.array([1] * PER_CLASS + [0] * PER_CLASS, dtype=np.float32)
    return patches, labels, paths


@pytest.fixture(scope="module")
def model(sample):
    import keras

    from core.model.architectures import build_model

    patches, labels, _ = sample
    model = build_model("tiny", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(patches, labels, epochs=15, batch_size=16, shuffle=True, verbose=0)
    return model


@pytest.fixture(scope="module")
def explainer(model):
    return Explainer(model)


@pytest.fixture(scope="module")
def saved_model(model, tmp_path_factory):
    from core.model.io import save_model

    return save_model(model, tmp_path_factory.mktemp("model") / "model.keras")


# --- heatmaps -----------------------------------------------------------------------------------


def test_gradcam_heatmap_is_96x96_in_unit_range_and_not_constant(sample, explainer):
    patches, _, _ = sample
    heatmap, probability = explainer.explain(patches[0])[:2]
    assert heatmap.shape == (96, 96) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert heatmap.std() > 0.01
    assert probability.shape == () and 0.0 <= float(probability) <= 1.0


def test_batch_in_gives_one_heatmap_and_probability_per_patch(sample, explainer, model):
    patches, _, _ = sample
    explanation = explainer.explain(patches[:5])
    assert explanation.heatmaps.shape == (5, 96, 96)
    expected = np.asarray(model(patches[:5].astype(np.float32))).reshape(-1)
    np.testing.assert_allclose(explanation.probabilities, expected, atol=1e-5)


def test_tumour_and_normal_patches_get_different_heatmaps(sample, explainer):
    patches, _, _ = sample
    tumour, normal = explainer.explain(patches[[0, PER_CLASS]]).heatmaps
    assert np.abs(tumour - normal).mean() > 0.05


@pytest.mark.parametrize("target", ["tumour", "predicted"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_finite_heatmaps_in_unit_range(sample, explainer, method, target):
    patches, _, _ = sample
    heatmaps = explainer.explain(patches[[0, PER_CLASS]], method=method, target=target).heatmaps
    assert heatmaps.shape == (2, 96, 96)
    assert np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    assert heatmaps.std(axis=(1, 2)).max() > 0.0


@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_predicted_target_explains_the_class_chosen_at_the_threshold(sample, explainer, method):
    patches, _, _ = sample
    if method == "scorecam":  # a forward pass per feature map of every patch: every third patch, both classes
        patches = patches[::3]
    tumour = explainer.explain(patches, method=method, target="tumour")
    predicted = explainer.explain(patches, method=method, target="predicted")
    called_tumour = tumour.probabilities >= explainer.threshold
    assert called_tumour.any() and not called_tumour.all()
    np.testing.assert_allclose(predicted.heatmaps[called_tumour], tumour.heatmaps[called_tumour], atol=1e-6)
    normal_maps_differ = np.abs(predicted.heatmaps[~called_tumour] - tumour.heatmaps[~called_tumour])
    assert normal_maps_differ.mean() > 0.01
    # At threshold 0 every patch is called tumour: "predicted" is then "tumour".
    everything_tumour = explainer.explain(patches[:4], method=method, target="predicted", threshold=0.0)
    np.testing.assert_allclose(everything_tumour.heatmaps, tumour.heatmaps[:4], atol=1e-6)


def test_all_zero_gradients_give_an_all_zero_map_not_nan(sample):
    from core.model.architectures import build_model

    model = build_model("tiny", seed=0)
    dense = model.get_layer("tumour_probability")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    heatmap = Explainer(model).explain(sample[0][0]).heatmaps
    assert np.isfinite(heatmap).all() and not heatmap.any()


def test_normalise_maps_constant_and_non_finite_values_to_zero():
    maps = np.stack(
        [
            np.full((96, 96), 3.0),
            np.full((96, 96), np.nan),
            np.arange(96 * 96.0).reshape(96, 96),
        ]
    )
    normalised = normalise(maps)
    assert not normalised[0].any() and not normalised[1].any()
    assert normalised[2].min() == 0.0 and normalised[2].max() == 1.0


def test_upsampling_puts_each_conv_cell_over_the_pixels_it_covers():
    grid = np.zeros((1, 6, 6), dtype=np.float32)
    grid[0, 2, 2] = 1.0  # on a 6x6 grid, cell (2, 2) covers pixels 32-47: the centre box's corner
    heatmap = resize_to_patch(grid)[0]
    assert heatmap.shape == (96, 96)
    row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert 32 <= row < 48 and 32 <= col < 48
    assert heatmap[32:48, 32:48].mean() > 5 * heatmap[:, 64:].mean()


def test_explain_refuses_patches_that_are_not_uint8_96x96_rgb(explainer):
    with pytest.raises(PatchError):
        explainer.explain(np.zeros(PATCH_SHAPE, dtype=np.float32))
    with pytest.raises(PatchError):
        explainer.explain(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="gradcam"):
        explainer.explain(np.zeros(PATCH_SHAPE, dtype=np.uint8), method="lime")


def test_tf_keras_vis_works_on_a_model_loaded_back_from_a_keras_file(sample, explainer, saved_model):
    from core.model.io import load_model

    patches, _, _ = sample
    loaded = Explainer(load_model(saved_model))
    assert loaded.layer == "last_conv"
    for method in ("gradcam", "gradcam++", "scorecam"):
        expected = explainer.explain(patches[:2], method=method).heatmaps
        np.testing.assert_allclose(loaded.explain(patches[:2], method=method).heatmaps, expected, atol=1e-4)


# --- overlays -----------------------------------------------------------------------------------


def box_outline(array: np.ndarray) -> np.ndarray:
    """The pixels of the outline drawn one pixel outside the centre box."""
    left, top, right, bottom = CENTRE_BOX
    return np.concatenate(
        [
            array[top - 1, left - 1 : right + 1],
            array[bottom, left - 1 : right + 1],
            array[top - 1 : bottom + 1, left - 1],
            array[top - 1 : bottom + 1, right],
        ]
    )


@pytest.mark.parametrize("colormap", ["jet", "inferno", "viridis"])
def test_overlay_blends_colours_and_draws_the_centre_box(sample, explainer, colormap):
    patch = sample[0][0]
    heatmap = explainer.explain(patch).heatmaps
    blended = overlay(patch, heatmap, colormap=colormap)
    assert blended.shape == PATCH_SHAPE and blended.dtype == np.uint8
    assert np.abs(blended.astype(int) - patch).mean() > 5
    assert (box_outline(blended) == BOX_COLOUR).all()
    left, top, right, bottom = CENTRE_BOX
    assert not (blended[top:bottom, left:right] == BOX_COLOUR).all(axis=-1).all()


def test_overlay_without_box_and_alpha_zero_is_the_patch(sample):
    patch = sample[0][0]
    heatmap = np.linspace(0, 1, 96 * 96, dtype=np.float32).reshape(96, 96)
    np.testing.assert_array_equal(overlay(patch, heatmap, alpha=0.0, draw_box=False), patch)
    without_box = overlay(patch, heatmap, draw_box=False)
    assert not (box_outline(without_box) == BOX_COLOUR).all()


def test_colormap_tables_start_and_end_at_the_published_colours():
    assert colormap_table("jet")[0].tolist() == [0, 0, 128]
    assert colormap_table("jet")[-1].tolist() == [128, 0, 0]
    assert colormap_table("viridis")[0].tolist() == [68, 1, 84]
    assert colormap_table("inferno")[-1].tolist() == [252, 255, 164]
    assert colormap_table("viridis").shape == (256, 3)


# --- the command line ---------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", "explain", *args],
        check=False,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_the_patch_beside_its_overlay_as_png(sample, saved_model, tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "nested" / "overlay.png"
    tif = str(sample[2][0])
    status = main(["explain", str(saved_model), tif, "--method", "gradcam++", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "P(tumour) = " in printed
    assert "gradcam++ strength " in printed and "shared scale" in printed  # how strong, how drawn
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (384, 240)  # the patches above the colour bar
        pixels = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(pixels[:192:2, :192:2], sample[0][0])  # left: the patch as it is
    bar = pixels[192 : 192 + 2 * COLOUR_BAR_HEIGHT : 2, ::2]
    np.testing.assert_array_equal(bar, colour_bar("jet", width=192))  # under both: the colour bar
    assert list(tmp_path.joinpath("nested").iterdir()) == [out]  # no temporary file left


def test_cli_accepts_a_run_directory(sample, saved_model, tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "overlay.png"
    status = main(
        [
            "explain",
            str(saved_model.parent),
            str(sample[2][0]),
            "--no-box",
            "--out",
            str(out),
        ]
    )
    assert status == 0 and out.is_file()


def test_cli_rejects_a_text_file_renamed_tif_in_one_line(saved_model, tmp_path):
    fake = tmp_path / "patch.tif"
    fake.write_text("this is not an image\n")
    result = run_cli(str(saved_model), str(fake), "--out", str(tmp_path / "o.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("model_name", ["notes.txt", "model.keras"])
def test_cli_rejects_a_model_path_that_is_not_a_keras_file(sample, tmp_path, model_name):
    fake = tmp_path / model_name
    fake.write_text("not a model\n")
    result = run_cli(str(fake), str(sample[2][0]), "--out", str(tmp_path / "o.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# --- the compiled Grad-CAM path ---------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["patchnet", "seed"])
def test_compiled_gradcam_equals_tf_keras_vis(sample, model, architecture):
    """The fused tf.function gives tf-keras-vis's Grad-CAM map for the tumour and the normal score."""
    from core.model.architectures import build_model

    patches = sample[0][:8]
    for candidate in (model, build_model(architecture, seed=1)):
        explainer = Explainer(candidate)
        fused = explainer._fused_gradcam()
        assert fused is not None
        signed, probabilities = explainer._signed_gradcam(fused, patches)
        batch = patches.astype(np.float32)
        for wanted, sign in ((True, 1.0), (False, -1.0)):
            reference = explainer._raw_maps("gradcam", batch, np.full(len(batch), wanted))
            np.testing.assert_allclose(np.maximum(sign * signed, 0), reference, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(probabilities, explainer.probabilities(patches), rtol=1e-5, atol=1e-6)


def test_a_model_whose_head_is_not_a_chain_falls_back_to_tf_keras_vis(sample):
    import keras

    inputs = keras.Input((96, 96, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    peak = keras.layers.GlobalMaxPooling2D()(conv)
    joined = keras.layers.Concatenate()([pooled, peak])
    outputs = keras.layers.Dense(1, activation="sigmoid")(joined)
    branching = keras.Model(inputs, outputs)
    explainer = Explainer(branching)
    assert explainer._fused_gradcam() is None
    heatmaps = explainer.explain(sample[0][:2]).heatmaps
    assert heatmaps.shape == (2, 96, 96) and np.isfinite(heatmaps).all()
