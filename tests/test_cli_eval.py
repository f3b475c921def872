"""`python -m core predict` and `python -m core evaluate` on a real tiny model and real patches."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from page_helpers import copy_kaggle_subset

from core.cli import main
from core.cli.evaluate import JSON_KEYS
from core.data.dataset import open_dataset

PROJECT_DIR = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_DIR / "data" / "sample"
PER_CLASS = 16
EXPECTED_KEYS = set(
    "n auc accuracy sensitivity specificity precision f1 average_precision log_loss brier ece threshold confusion".split()
)
pytestmark = pytest.mark.usefixtures("workspace")  # prediction caches go to a throwaway workspace


@pytest.fixture(scope="module")
def kaggle_dir(tmp_path_factory) -> Path:
    """32 real patches (16 tumour, 16 normal) in the Kaggle layout."""
    return copy_kaggle_subset(tmp_path_factory.mktemp("kaggle"), PER_CLASS)


@pytest.fixture(scope="module")
def unlabelled_dir(kaggle_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unlabelled")
    for path in sorted((kaggle_dir / "train").iterdir())[:10]:
        shutil.copy(path, folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(kaggle_dir, tmp_path_factory, fit_tiny_model) -> Path:
    """A run directory holding the tiny CNN fitted for a few steps, as the trainer leaves it."""
    folder = tmp_path_factory.mktemp("run")
    fit_tiny_model(kaggle_dir, folder / "model.keras")
    return folder


# --------------------------------------------------------------------------- evaluate


def test_json_keys_are_exactly_the_documented_ones():
    assert set(JSON_KEYS) == EXPECTED_KEYS and len(JSON_KEYS) == len(EXPECTED_KEYS)


def test_evaluate_json(run_cli, run_dir, kaggle_dir):
    from core.evaluate.metrics import metrics_at
    from core.evaluate.predict import predict_dataset
    from core.model.io import load_model

    code, out, err = run_cli("evaluate", run_dir, kaggle_dir, "--json", "--threshold", 0.4)
    assert code == 0, err
    metrics = json.loads(out)
    assert set(metrics) == EXPECTED_KEYS | {"training_overlap"}
    assert metrics["training_overlap"] is None  # a model file without a training record
    assert metrics["n"] == 2 * PER_CLASS
    assert metrics["threshold"] == 0.4
    (tn, fp), (fn, tp) = metrics["confusion"]
    assert tn + fp == PER_CLASS and fn + tp == PER_CLASS

    frame = predict_dataset(load_model(run_dir), open_dataset(kaggle_dir))
    expected = metrics_at(frame["label"], frame["prob"], 0.4)
    for key in EXPECTED_KEYS:
        if isinstance(expected[key], float):
            assert metrics[key] == pytest.approx(expected[key], rel=1e-6), key
        else:
            assert metrics[key] == expected[key], key
    assert "\r" in err  # progress went to stderr, stdout holds only the JSON


def test_evaluate_caches_predictions_in_the_workspace(run_cli, run_dir, kaggle_dir, workspace):
    first = run_cli("evaluate", run_dir, kaggle_dir, "--json")
    cached = list((workspace / "cache" / "predictions").glob("*.csv"))
    assert len(cached) == 1
    second = run_cli("evaluate", run_dir, kaggle_dir, "--json")
    assert json.loads(second[1]) == json.loads(first[1])
    run_cli("evaluate", run_dir, kaggle_dir, "--json", "--tta")
    assert len(list((workspace / "cache" / "predictions").glob("*.csv"))) == 2


def test_evaluate_table_shows_intervals_and_confusion(run_cli, run_dir, kaggle_dir):
    code, out, err = run_cli("evaluate", run_dir / "model.keras", kaggle_dir, "--no-cache")
    assert code == 0, err
    assert "95% bootstrap interval" in out
    auc_line = next(line for line in out.splitlines() if line.startswith("AUC"))
    assert auc_line.count("[") == 1 and "," in auc_line  # [low, high]
    assert "confusion matrix" in out and "true tumour" in out


def test_evaluate_refuses_an_unlabelled_dataset(run_cli, run_dir, unlabelled_dir):
    code, out, err = run_cli("evaluate", run_dir, unlabelled_dir)
    assert code == 2
    assert "unlabelled" in err and "evaluate needs labels" in err
    assert len(err.strip().splitlines()) == 1 and out == ""


# --------------------------------------------------------------------------- predict


@pytest.mark.parametrize("data_fixture", ["kaggle_dir", "unlabelled_dir"])
def test_predict_writes_a_kaggle_submission(request, run_cli, run_dir, data_fixture, tmp_path):
    data = request.getfixturevalue(data_fixture)
    out_path = tmp_path / "out" / "submission.csv"
    code, _, err = run_cli("predict", run_dir, data, "--out", out_path, "--batch-size", 8)
    assert code == 0, err
    assert out_path.read_text().splitlines()[0] == "id,label"
    submission = pd.read_csv(out_path, dtype={"id": str})
    assert submission["id"].tolist() == open_dataset(data).ids
    assert submission["label"].between(0, 1).all()
    assert [p.name for p in out_path.parent.iterdir()] == ["submission.csv"]  # no temp file


def test_predict_writes_a_quality_report_next_to_the_submission(run_cli, run_dir, kaggle_dir, tmp_path):
    from PIL import Image

    data = tmp_path / "mixed"
    shutil.copytree(kaggle_dir / "train", data)
    blue = np.zeros((96, 96, 3), dtype=np.uint8)
    blue[..., 2] = 255
    Image.fromarray(blue).save(data / "blue_square.png")
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data / "noise.png")
    Image.fromarray(np.full((96, 96, 3), 238, dtype=np.uint8)).save(data / "glass.png")
    preds, report = tmp_path / "preds.csv", tmp_path / "quality.csv"

    code, _, err = run_cli("predict", run_dir, data, "--out", preds, "--quality-report", report)
    assert code == 0, err
    assert preds.read_text().splitlines()[0] == "id,label"
    assert report.read_text().splitlines()[0] == "id,probability,quality"
    submission = pd.read_csv(preds, dtype={"id": str})
    quality = pd.read_csv(report, dtype={"id": str}).set_index("id")
    assert list(submission.columns) == ["id", "label"]
    assert quality.index.tolist() == submission["id"].tolist() == open_dataset(data).ids
    np.testing.assert_allclose(quality["probability"], submission["label"])
    assert quality.loc["blue_square", "quality"] == "not_he"
    assert quality.loc["noise", "quality"] == "not_he"
    assert quality.loc["glass", "quality"] == "background"
    real = quality.drop(index=["blue_square", "noise", "glass"])["quality"]
    assert set("".join(real).replace("ok", "")) <= set("backgroundnot_heblurred;")
    assert (real == "ok").mean() >= 0.8
    assert "quality report" in err and "not_he 2" in err


def test_predict_with_tta_changes_the_probabilities(run_cli, run_dir, kaggle_dir, tmp_path):
    plain, tta = tmp_path / "plain.csv", tmp_path / "tta.csv"
    assert run_cli("predict", run_dir, kaggle_dir, "--out", plain)[0] == 0
    assert run_cli("predict", run_dir, kaggle_dir, "--out", tta, "--tta")[0] == 0
    difference = pd.read_csv(tta)["label"] - pd.read_csv(plain)["label"]
    assert np.abs(difference).max() > 1e-4


# --------------------------------------------------------------------------- model errors


def test_a_non_model_file_exits_2_without_traceback(tmp_path, kaggle_dir):
    fake = tmp_path / "notes.keras"
    fake.write_text("this is not a model")
    result = subprocess.run(
        [sys.executable, "-m", "core", "evaluate", str(fake), str(kaggle_dir)],
        cwd=PROJECT_DIR,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "notes.keras" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["notes.txt", "missing.keras", "empty_run_dir"])
def test_other_bad_models_exit_2(run_cli, tmp_path, kaggle_dir, name):
    model = tmp_path / name
    if name == "notes.txt":
        model.write_text("hello")
    elif name == "empty_run_dir":
        model.mkdir()
    code, _, err = run_cli("predict", model, kaggle_dir, "--out", tmp_path / "p.csv")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def test_a_model_breaking_the_contract_exits_2(run_cli, tmp_path, kaggle_dir):
    import keras

    inputs = keras.Input(shape=(96, 96, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    two_classes = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    path = tmp_path / "two_classes.keras"
    two_classes.save(path)
    code, _, err = run_cli("evaluate", path, kaggle_dir)
    assert code == 2 and "(None, 1)" in err and "Traceback" not in err


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "half"])
def test_a_threshold_outside_0_1_is_a_usage_error(capsys, run_dir, kaggle_dir, threshold):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(run_dir), str(kaggle_dir), "--threshold", threshold])
    assert stop.value.code == 2
    assert "--threshold" in capsys.readouterr().err
