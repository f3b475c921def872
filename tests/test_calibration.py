"""Temperature scaling: the fit on known miscalibration, the fold into a real model file, the CLI."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from core.errors import InputError
from core.evaluate.calibration import (
    calibrate_model_file,
    fit_temperature,
    scaled_probabilities,
    stored_temperature,
)
from core.model.io import read_model_meta
from core.model.ood import OOD_ENTRY
from core.settings import BASELINE_MODEL


def _overconfident(temperature: float, n: int = 4000, seed: int = 0):
    """Labels drawn from true probabilities q, and probabilities whose logit is that of q times T."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return labels, 1 / (1 + np.exp(-true_logit * temperature))


@pytest.mark.parametrize("temperature", [0.5, 2.5])
def test_the_fit_recovers_a_known_temperature_and_improves_log_loss_and_ece(temperature):
    labels, probs = _overconfident(temperature)
    fit = fit_temperature(labels, probs)
    assert fit.temperature == pytest.approx(temperature, rel=0.1)
    assert fit.log_loss_after < fit.log_loss_before
    assert fit.ece_after < fit.ece_before
    assert fit.n == len(labels)


def test_scaling_keeps_the_ranking_and_the_half_point():
    probs = np.array([0.01, 0.2, 0.5, 0.7, 0.999])
    scaled = scaled_probabilities(probs, 3.0)
    assert np.all(np.diff(scaled) > 0)
    assert scaled[2] == pytest.approx(0.5)
    assert scaled[0] > probs[0] and scaled[-1] < probs[-1]  # T > 1 pulls towards 0.5
    np.testing.assert_allclose(scaled_probabilities(probs, 1.0), probs, atol=1e-6)


def test_too_few_patches_one_class_or_a_bad_temperature_are_refused():
    labels, probs = _overconfident(2.0, n=200)
    with pytest.raises(InputError, match="at least"):
        fit_temperature(labels[:10], probs[:10])
    with pytest.raises(InputError, match="both classes"):
        fit_temperature(np.ones(100, dtype=int), probs[:100])
    with pytest.raises(InputError, match="positive"):
        scaled_probabilities(probs, 0.0)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, sample_dir):
    """The bundled baseline calibrated on the sample, written to a temporary file."""
    out = tmp_path_factory.mktemp("calibrated") / "calibrated.keras"
    fit = calibrate_model_file(BASELINE_MODEL, sample_dir, out)
    return fit, out


def test_the_calibrated_file_scores_as_the_fit_says_and_keeps_its_metadata(calibrated, small_patches):
    from core.evaluate.predict import predict_patches
    from core.model.io import load_model

    fit, out = calibrated
    before = predict_patches(load_model(BASELINE_MODEL), small_patches)
    after = predict_patches(load_model(out), small_patches)
    np.testing.assert_allclose(after, scaled_probabilities(before, fit.temperature), atol=2e-5)
    assert np.array_equal(np.argsort(after, kind="stable"), np.argsort(before, kind="stable"))

    meta, original = read_model_meta(out), read_model_meta(BASELINE_MODEL)
    # the baseline ships calibrated on unseen slides: this fit multiplies onto its temperature
    assert stored_temperature(meta) == pytest.approx(stored_temperature(original) * fit.temperature, rel=1e-5)
    assert meta["calibration"]["fit"]["n"] == 1000
    assert meta["ood"] == original["ood"] and meta["last_conv_layer"] == original["last_conv_layer"]
    with zipfile.ZipFile(out) as archive, zipfile.ZipFile(BASELINE_MODEL) as source:
        assert archive.read(OOD_ENTRY) == source.read(OOD_ENTRY)


def test_a_second_calibration_multiplies_onto_the_first(calibrated, small_kaggle, tmp_path):
    fit, out = calibrated
    again = tmp_path / "again.keras"
    second = calibrate_model_file(out, small_kaggle, again)
    assert stored_temperature(read_model_meta(again)) == pytest.approx(
        stored_temperature(read_model_meta(out)) * second.temperature, rel=1e-4
    )


def test_the_cli_prints_the_fit_and_refuses_unlabelled_data(
    run_cli, small_kaggle, unlabelled_folder_dir, tmp_path, workspace
):
    out = tmp_path / "cli.keras"
    run_dir = tmp_path / "run"  # MODEL may be a run directory, as for every command
    run_dir.mkdir()
    shutil.copy(BASELINE_MODEL, run_dir / "model.keras")
    code, stdout, _ = run_cli("calibrate", run_dir, small_kaggle, "--out", out, "--json")
    assert code == 0 and out.is_file()
    import json

    reported = json.loads(stdout)
    assert reported["n"] == 40 and reported["temperature"] > 0
    assert stored_temperature(read_model_meta(out)) == pytest.approx(reported["model_temperature"], rel=1e-4)
    assert reported["model_temperature"] == pytest.approx(
        stored_temperature(read_model_meta(BASELINE_MODEL)) * reported["temperature"], rel=1e-4
    )

    code, _, stderr = run_cli(
        "calibrate", BASELINE_MODEL, unlabelled_folder_dir, "--out", tmp_path / "x.keras"
    )
    assert code == 2 and "no labels" in stderr
    assert not (tmp_path / "x.keras").exists()


def test_a_training_run_folds_the_validation_temperature_into_its_final_model(tmp_path, workspace):
    from page_helpers import copy_kaggle_subset, finished_run

    from core.data.dataset import open_dataset
    from core.evaluate.predict import predict_patches
    from core.evaluate.predictions import read_predictions
    from core.model.io import load_model
    from core.train.runs import read_status

    data = copy_kaggle_subset(tmp_path / "data", 40)
    run_dir = finished_run(workspace, data)
    status, meta = read_status(run_dir), read_model_meta(run_dir / "model.keras")
    fit = meta["calibration"]["fit"]
    assert fit["n"] == status["n_val"] == 40
    assert status["temperature"] == meta["calibration"]["temperature"] != 1.0
    assert fit["log_loss_after"] <= fit["log_loss_before"]

    # val_predictions.csv holds what the calibrated final model says, not the raw network
    saved = read_predictions(run_dir / "val_predictions.csv")
    dataset = open_dataset(data)
    index = {patch_id: i for i, patch_id in enumerate(dataset.ids)}
    pixels = dataset.read_batch([index[i] for i in saved["id"]])
    now = predict_patches(load_model(run_dir / "model.keras"), pixels)
    np.testing.assert_allclose(now, saved["prob"].to_numpy(), atol=1e-5)


def test_the_note_says_whether_and_how_a_model_was_calibrated(calibrated):
    from core.evaluate.calibration import calibration_note

    fit, out = calibrated
    note = calibration_note(read_model_meta(out))
    assert f"T = {stored_temperature(read_model_meta(out)):.3f}" in note and f"{fit.ece_after:.3f}" in note
    assert "not calibrated" in calibration_note({})
    assert "skipped" in calibration_note({"calibration": {"temperature": 1.0, "skipped": "too few"}})


def test_the_evaluate_page_says_the_active_model_is_calibrated(calibrated, small_kaggle, workspace, run_cli):
    from page_helpers import open_page

    fit, out = calibrated
    assert run_cli("evaluate", out, small_kaggle)[0] == 0  # fills the prediction cache the page reads
    at = open_page(workspace, "evaluate", model=out, dataset=small_kaggle)
    assert not at.exception and at.metric  # read from the cache, no job needed
    captions = " ".join(c.value for c in at.caption)
    assert (
        f"Probabilities calibrated by temperature scaling (T = {stored_temperature(read_model_meta(out)):.3f}"
        in captions
    )
