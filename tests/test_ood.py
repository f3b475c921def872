"""The out-of-distribution flag (core.model.features, core.model.ood) on real tiny models and real
patches of the bundled sample: the feature extractor, the Mahalanobis distance, the statistics inside
the .keras file, a training run that stores them, and where the flag shows (predictions, the CLI's
quality report, the Predict page)."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from page_helpers import copy_kaggle_subset, open_page
from PIL import Image

from core.data.dataset import open_dataset
from core.data.images import decode_patch
from core.data.quality import FLAG_BADGES, OUT_OF_DISTRIBUTION, QUALITY_FLAGS
from core.settings import SAMPLE_DATASET

N_PER_CLASS = 60  # training patches per class of the run below (the first of each class)


def sample_rows() -> list[tuple[str, int]]:
    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        return [(row["id"], int(row["label"])) for row in csv.DictReader(handle)]


def blue_square() -> np.ndarray:
    blue = np.zeros((96, 96, 3), dtype=np.uint8)
    blue[..., 2] = 255
    return blue


def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real training run (core.train.job, tiny architecture) on 2 x N_PER_CLASS sample patches."""
    from core.train.job import TrainConfig, run_training

    root = tmp_path_factory.mktemp("ood")
    data = copy_kaggle_subset(root / "data", N_PER_CLASS)
    config = TrainConfig(data=[str(data)], architecture="tiny", epochs=3, batch_size=16, seed=0)
    status = run_training(config, root / "run", verbose=False)
    assert status["state"] == "finished", status
    return root / "run", status


@pytest.fixture(scope="module")
def held_out_patches() -> np.ndarray:
    """300 real sample patches the run above never saw (neither trained nor validated on)."""
    rows = sample_rows()
    used = set([i for i, label in rows if label == 0][:N_PER_CLASS])
    used |= set([i for i, label in rows if label == 1][:N_PER_CLASS])
    fresh = [i for i, _ in rows if i not in used][:300]
    return np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{i}.tif") for i in fresh])


@pytest.fixture(scope="module")
def plain_model_path(tmp_path_factory, fit_tiny_model):
    """A tiny real model saved without statistics (fitted on 40 real patches)."""
    root = tmp_path_factory.mktemp("plain")
    return fit_tiny_model(copy_kaggle_subset(root / "data", 20), root / "plain.keras")


# ----------------------------------------------------------------------------- the features


def test_feature_extractor_is_the_input_of_the_final_dense_layer(plain_model_path, small_patches):
    import keras

    from core.evaluate.predict import predict_patches
    from core.model.features import compiled_scores, feature_extractor, probabilities_and_features
    from core.model.io import load_model

    model = load_model(plain_model_path)
    pooled = next(layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    independent = keras.Model(model.input, pooled.output)  # dropout is the identity at inference
    x = small_patches.astype("float32")
    features = np.asarray(feature_extractor(model)(x, training=False))
    np.testing.assert_allclose(features, np.asarray(independent(x, training=False)), rtol=1e-5, atol=1e-6)
    assert features.shape == (len(x), 16) and np.abs(features).max() > 0

    probs, batched = probabilities_and_features(model, small_patches, batch_size=7)
    np.testing.assert_allclose(batched, features, rtol=1e-5, atol=1e-6)
    # the probability is the model's own (batches of 7 and of the predict path round alike but for the
    # last bit on some CPUs' oneDNN kernels)
    np.testing.assert_allclose(probs, predict_patches(model, small_patches), rtol=1e-6, atol=1e-7)
    tta_probs, tta_features = (t.numpy() for t in compiled_scores(model, tta=True)(x))
    np.testing.assert_allclose(tta_probs, predict_patches(model, small_patches, tta=True), atol=1e-6)
    np.testing.assert_allclose(tta_features, features, rtol=1e-5, atol=1e-6)


def test_a_model_that_does_not_end_in_dense_is_refused_in_words():
    import keras

    from core.errors import ModelError
    from core.model.features import feature_extractor
    from core.model.ood import score_patches

    inputs = keras.Input((96, 96, 3))
    outputs = keras.layers.Activation("sigmoid")(keras.layers.GlobalAveragePooling2D()(inputs)[:, :1])
    foreign = keras.Model(inputs, outputs)
    with pytest.raises(ModelError, match="Dense"):
        feature_extractor(foreign)
    scored = score_patches(foreign, np.full((2, 96, 96, 3), 128, np.uint8))  # still scored, no verdict
    assert scored.probs.shape == (2,) and scored.out_of_distribution is None


# ----------------------------------------------------------------------------- the distance


def test_mahalanobis_distance_equals_a_direct_numpy_computation():
    from core.model.ood import calibrated, fit_stats

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 3.0 * labels[:, None]
    stats = fit_stats(features, labels)

    means = np.stack([features[labels == c].mean(axis=0) for c in (0, 1)])
    np.testing.assert_allclose(stats.means, means)
    centred = features - means[labels]
    sample = centred.T @ centred / len(centred)
    shrunk = (1 - stats.shrinkage) * sample + stats.shrinkage * np.trace(sample) / 6 * np.eye(6)
    np.testing.assert_allclose(stats.precision, np.linalg.inv(shrunk), rtol=1e-6)

    queries = rng.normal(size=(25, 6)) * 4
    direct = [min(np.sqrt((q - m) @ np.linalg.inv(shrunk) @ (q - m)) for m in means) for q in queries]
    np.testing.assert_allclose(stats.distances(queries), direct, rtol=1e-6)

    held_out = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    ready = calibrated(stats, held_out, percentile=90.0)
    assert ready.threshold == pytest.approx(np.percentile(stats.distances(held_out), 90.0))
    assert ready.out_of_distribution(held_out).mean() == pytest.approx(0.10, abs=0.01)


# ----------------------------------------------------------------------------- the model file


def test_stats_round_trip_through_a_saved_model_and_leave_the_model_unchanged(
    plain_model_path, small_patches, tmp_path
):
    import shutil

    from core.evaluate.predict import predict_patches
    from core.model.io import META_ENTRY, load_model, read_model_meta
    from core.model.ood import OOD_ENTRY, fit_ood_stats, has_ood_stats, model_ood_stats, write_ood_stats

    path = shutil.copy(plain_model_path, tmp_path / "with_stats.keras")
    model = load_model(path)
    before = predict_patches(model, small_patches)
    labels = np.array([label for _, label in sample_rows()[: len(small_patches)]])
    stats = fit_ood_stats(model, small_patches, labels, small_patches[::2])
    assert not has_ood_stats(path)
    write_ood_stats(path, stats)

    assert has_ood_stats(path)
    meta = read_model_meta(path)
    assert meta["ood"]["threshold"] == pytest.approx(stats.threshold, abs=1e-4)
    assert meta["architecture"] == "tiny" and meta["ood"]["n_fit"] == len(small_patches)
    with zipfile.ZipFile(plain_model_path) as old, zipfile.ZipFile(path) as new:
        assert set(new.namelist()) == set(old.namelist()) | {OOD_ENTRY}
        for name in old.namelist():
            if name != META_ENTRY:
                assert old.read(name) == new.read(name), name
    again = load_model(path)
    stored = model_ood_stats(again)
    np.testing.assert_array_equal(stored.means, stats.means)
    np.testing.assert_array_equal(stored.precision, stats.precision)
    assert stored.threshold == stats.threshold and stored.n_calibration == len(small_patches[::2])
    assert np.array_equal(predict_patches(again, small_patches), before), "the model is unchanged"


# ----------------------------------------------------------------------------- a training run


def test_a_training_run_stores_stats_that_flag_non_he_inputs_but_few_real_patches(
    trained_run, held_out_patches
):
    from core.model.io import load_model, read_model_meta
    from core.model.ood import score_patches

    run_dir, status = trained_run
    meta = read_model_meta(run_dir / "model.keras")
    assert meta["ood"]["n_fit"] == 2 * N_PER_CLASS - status["n_val"]  # every training patch (< 4,096)
    assert meta["ood"]["n_calibration"] == status["n_val"]
    assert status["ood_fit_s"] >= 0
    model = load_model(run_dir)
    scored = score_patches(model, np.stack([blue_square(), noise()]))
    assert scored.out_of_distribution.tolist() == [True, True], scored.distances
    real = score_patches(model, held_out_patches)
    assert real.out_of_distribution.mean() < 0.10, np.sort(real.distances)[-40:]
    assert scored.distances.min() > np.percentile(real.distances, 99)


def test_predictions_and_the_cli_quality_report_carry_the_flag(trained_run, tmp_path, run_cli):
    import pandas as pd

    from core.evaluate.predict import predict_dataset
    from core.evaluate.predictions import cached_predictions, with_quality
    from core.model.io import load_model

    run_dir, _ = trained_run
    folder = tmp_path / "mixed"
    folder.mkdir()
    rows = sample_rows()[-6:]
    for item, _ in rows:
        Image.fromarray(decode_patch(SAMPLE_DATASET / "train" / f"{item}.tif")).save(folder / f"{item}.png")
    Image.fromarray(noise()).save(folder / "noise.png")
    dataset = open_dataset(folder)
    model = load_model(run_dir)

    frame = predict_dataset(model, dataset, batch_size=4, quality=True).set_index("id")
    assert frame.loc["noise", "quality"] == f"not_he;{OUT_OF_DISTRIBUTION}"
    plain = predict_dataset(model, dataset, batch_size=4).set_index("id")
    assert np.array_equal(frame["prob"], plain["prob"]), "one forward pass, the same probabilities"
    cached = cached_predictions(run_dir, dataset, cache_dir=tmp_path / "cache", model=model)
    assert with_quality(cached, OUT_OF_DISTRIBUTION)["id"].tolist() == [
        i for i in frame.index if OUT_OF_DISTRIBUTION in frame.loc[i, "quality"]
    ]
    assert "noise" in with_quality(cached, OUT_OF_DISTRIBUTION)["id"].tolist()

    out, report = tmp_path / "preds.csv", tmp_path / "quality.csv"
    code, _, stderr = run_cli("predict", run_dir, folder, "--out", out, "--quality-report", report)
    assert code == 0, stderr
    written = pd.read_csv(report, dtype=str).set_index("id")
    assert written.loc["noise", "quality"] == f"not_he;{OUT_OF_DISTRIBUTION}"
    assert written["quality"].to_dict() == frame["quality"].to_dict()
    assert OUT_OF_DISTRIBUTION in stderr


def test_a_model_without_stats_gives_no_flag_and_says_so(plain_model_path, small_patches, tmp_path):
    from core.evaluate.predict import predict_dataset
    from core.model.io import load_model
    from core.model.ood import NO_STATS_NOTE, has_ood_stats, score_patches

    model = load_model(plain_model_path)
    assert not has_ood_stats(plain_model_path)
    scored = score_patches(model, np.stack([blue_square(), noise(), *small_patches[:3]]))
    assert scored.out_of_distribution is None and scored.distances is None
    assert scored.probs.shape == (5,) and np.isfinite(scored.probs).all()
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(noise()).save(folder / "noise.png")
    frame = predict_dataset(model, open_dataset(folder), quality=True)
    assert frame["quality"].tolist() == ["not_he"]
    assert "no statistics" in NO_STATS_NOTE and OUT_OF_DISTRIBUTION in NO_STATS_NOTE
    assert QUALITY_FLAGS[-1] == OUT_OF_DISTRIBUTION


# ----------------------------------------------------------------------------- the Predict page


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_page_badges_the_flag_or_says_the_model_has_no_stats(
    trained_run, plain_model_path, tmp_path, monkeypatch
):
    from core.model.ood import NO_STATS_NOTE

    run_dir, _ = trained_run
    real = SAMPLE_DATASET / "train" / f"{sample_rows()[-1][0]}.tif"
    files = [("noise.png", png(noise()), "image/png"), (real.name, real.read_bytes(), "image/tiff")]
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))

    at = open_page(tmp_path / "workspace", "predict", model=run_dir / "model.keras")
    at.file_uploader(key="predict_uploads").set_value(files).run()
    assert not at.exception, at.exception
    results = at.dataframe[0].value.set_index("file")
    assert results.loc["noise.png", "quality"] == "not H&E, out of distribution"  # in words (issue 19)
    assert results.loc["noise.png", "call"] == ""
    badges = " ".join(element.value for element in at.markdown if "-badge[" in element.value)
    assert FLAG_BADGES[OUT_OF_DISTRIBUTION] in badges
    assert NO_STATS_NOTE not in [caption.value for caption in at.caption]

    at = open_page(tmp_path / "workspace", "predict", model=plain_model_path)
    at.file_uploader(key="predict_uploads").set_value(files).run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value.set_index("file").loc["noise.png", "quality"] == "not H&E"
    assert NO_STATS_NOTE in [caption.value for caption in at.caption]


# ----------------------------------------------------------------------------- Evaluate and Mistakes


def test_evaluate_and_mistakes_use_the_flag_or_say_the_model_has_no_stats(
    trained_run, plain_model_path, tmp_path, monkeypatch
):
    from quality_folders import mixed_class_folders

    from core.evaluate.interpret import Interpretation
    from core.evaluate.predictions import WITHOUT_FLAGGED, cached_predictions, flagged_mask
    from core.model.ood import NO_STATS_NOTE

    run_dir, _ = trained_run
    data = mixed_class_folders(tmp_path / "classes", n_per_class=8)
    Image.fromarray(noise()).save(data / "0" / "noise.png")
    workspace = tmp_path / "workspace"
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    predictions = cached_predictions(run_dir / "model.keras", open_dataset(data))
    cached_predictions(plain_model_path, open_dataset(data))
    unlike = Interpretation(predictions).mistakes(0.0, quality=OUT_OF_DISTRIBUTION)
    assert len(unlike) >= 2  # the noise and the blue square are normal patches: false positives at 0

    def open_on(model, page):
        at = open_page(workspace, page, model=model, dataset=data)
        assert not at.error, [e.value for e in at.error]
        return at

    at = open_on(run_dir / "model.keras", "mistakes")
    assert NO_STATS_NOTE not in [caption.value for caption in at.caption]
    at.slider(key="threshold_slider").set_value(0.0).run()
    at.selectbox(key="mistakes_quality").set_value(OUT_OF_DISTRIBUTION).run()
    assert {m.label: m.value for m in at.metric}["Shown after filters"] == str(len(unlike))

    at = open_on(run_dir / "model.keras", "evaluate")
    shown = next(frame.value for frame in at.dataframe if "Accuracy" in frame.value.columns)
    assert shown.loc[WITHOUT_FLAGGED, "n"] == len(predictions) - int(flagged_mask(predictions).sum())

    at = open_on(plain_model_path, "mistakes")
    assert NO_STATS_NOTE in [caption.value for caption in at.caption]
