"""Likely label errors (core.diagnose.label_issues, core.diagnose.crossval, `python -m core
label-issues`): the scores are cleanlab's own, flipped labels of real patches rank first, the CSV
holds every labelled patch once in every labelled layout, and the probabilities say their kind."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from page_helpers import copy_kaggle_subset, finished_run

import core.train.job  # noqa: F401  imported at collection, before any capsys: see the note below
from core.cli import main
from core.data.cache import prepare
from core.data.dataset import open_dataset
from core.diagnose.crossval import (
    CrossValSettings,
    assign_folds,
    crossval_dir,
    crossval_probabilities,
    request_stop,
    stored_crossval,
)
from core.diagnose.label_issues import (
    IN_SAMPLE,
    OUT_OF_SAMPLE,
    SUSPECT_COLUMNS,
    model_predictions_kind,
    rank_dataset,
    rank_label_issues,
)
from core.errors import DatasetError, RunError
from core.evaluate.predictions import read_predictions
from core.settings import BASELINE_MODEL, SAMPLE_DATASET
from core.train.runs import read_json

# core.train.reporting.terminal_printer binds `sys.stderr` as a default argument when first imported; if
# that first import happened inside a capsys test, the k-fold command (which trains with a progress
# printer) would later write to capsys's closed stream. Importing the trainer here binds the real one.
N_FLIPPED = 4
N_REAL = 40


@pytest.fixture(autouse=True)
def workspace(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.getbasetemp() / "label-issues-workspace"
    monkeypatch.setenv("PATCHLENS_HOME", str(home))
    return home


def read_suspects(path: Path) -> pd.DataFrame:
    with open(path, newline="") as handle:
        assert next(csv.reader(handle)) == list(SUSPECT_COLUMNS)  # exactly these columns, this order
    return pd.read_csv(path, dtype={"id": str})


# --------------------------------------------------------------------------- the numbers


def test_scores_are_one_minus_cleanlabs_label_quality_computed_independently():
    rng = np.random.default_rng(7)
    n = 500
    truth = rng.integers(0, 2, n)
    probs = np.clip(0.75 * truth + rng.normal(0.12, 0.2, n), 0.0, 1.0)
    labels = np.where(rng.random(n) < 0.05, 1 - truth, truth)  # 5 % label noise
    ids = [f"patch-{k:04d}" for k in range(n)]

    ranked = rank_label_issues(ids, labels, probs)

    pred_probs = np.column_stack([1 - probs, probs])
    expected = pd.DataFrame(
        {
            "id": ids,
            "score": 1 - get_label_quality_scores(labels, pred_probs),
            "by_hand": np.where(labels == 1, 1 - probs, probs),  # 1 - P(given label)
            "flagged": find_label_issues(labels, pred_probs),
        }
    ).set_index("id")
    mine = ranked.set_index("id").loc[expected.index]
    np.testing.assert_allclose(mine["score"], expected["score"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine["score"], expected["by_hand"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mine["flagged"], expected["flagged"])
    assert expected["flagged"].sum() > 0  # the comparison of the flags is not vacuous
    np.testing.assert_array_equal(mine["given_label"], labels)
    np.testing.assert_array_equal(mine["probability"], probs)
    assert (np.diff(ranked["score"].to_numpy()) <= 0).all()  # most suspect first
    assert sorted(ranked["id"]) == ids  # every patch once


def test_ties_are_ordered_by_id_and_bad_inputs_are_refused():
    ranked = rank_label_issues(["b", "a", "c", "d"], [0, 0, 1, 1], [0.9, 0.9, 0.2, 0.8])
    assert ranked["id"].tolist() == ["a", "b", "c", "d"]
    with pytest.raises(DatasetError, match="Every patch is labelled 1"):
        rank_label_issues(["a", "b"], [1, 1], [0.2, 0.9])
    with pytest.raises(DatasetError, match="No labelled patches"):
        rank_label_issues([], [], [])
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        rank_label_issues(["a", "b"], [0, 1], [0.2, 1.5])
    with pytest.raises(DatasetError, match="unique"):
        rank_label_issues(["a", "a"], [0, 1], [0.2, 0.5])
    with pytest.raises(DatasetError, match="one length"):
        rank_label_issues(["a", "b"], [0, 1], [0.2])


def test_predictions_of_another_dataset_or_other_labels_are_refused(small_kaggle):
    dataset = open_dataset(small_kaggle)
    own = pd.DataFrame({"id": dataset.ids, "label": dataset.labels.astype(float), "prob": 0.5})
    assert len(rank_dataset(dataset, own)) == len(dataset)
    foreign = own.assign(id=[f"other-{k}" for k in range(len(own))])
    with pytest.raises(DatasetError, match="another dataset"):
        rank_dataset(dataset, foreign)
    relabelled = own.assign(label=1.0 - own["label"])
    with pytest.raises(DatasetError, match="other labels"):
        rank_dataset(dataset, relabelled)


# --------------------------------------------------------------------------- flipped labels of real patches


def test_flipped_labels_of_real_patches_rank_at_the_top(tmp_path, capsys):
    """The bundled baseline never trained on data/sample: its probabilities there are out-of-sample.
    Flip the labels of the patches it is surest about; confident learning must put them first."""
    from core.evaluate.predict import predict_dataset
    from core.model.io import load_model

    data = copy_kaggle_subset(tmp_path / "data", N_REAL // 2)
    truth = predict_dataset(load_model(BASELINE_MODEL), open_dataset(data))
    sure = np.where(truth["label"] == 1, truth["prob"], 1 - truth["prob"])
    flipped = set(truth["id"].to_numpy()[np.argsort(-sure)[:N_FLIPPED]])
    rows = pd.read_csv(data / "train_labels.csv", dtype={"id": str})
    rows.loc[rows["id"].isin(flipped), "label"] = 1 - rows.loc[rows["id"].isin(flipped), "label"]
    rows.to_csv(data / "train_labels.csv", index=False)

    out = tmp_path / "suspects.csv"
    assert main(["label-issues", str(BASELINE_MODEL), str(data), "--out", str(out)]) == 0
    suspects = read_suspects(out)
    assert set(suspects["id"].head(N_FLIPPED)) == flipped
    assert len(suspects) == len(rows) and suspects["id"].is_unique
    given = rows.set_index("id")["label"]
    np.testing.assert_array_equal(suspects["given_label"], given.loc[suspects["id"]].to_numpy())
    err = capsys.readouterr().err
    assert "probabilities: out-of-sample" in err
    assert f"0 of {len(rows)} patches were in this model's training data" in err  # its shipped record


# --------------------------------------------------------------------------- every labelled layout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, fit_tiny_model) -> Path:
    data = copy_kaggle_subset(tmp_path_factory.mktemp("tiny-data"), 10)
    return fit_tiny_model(data, tmp_path_factory.mktemp("tiny") / "tiny.keras")


@pytest.mark.parametrize("layout", ["kaggle", "class-folders", "pcam-hdf5", "cache"])
def test_every_labelled_patch_once_in_every_layout(
    layout, tiny, small_kaggle, class_folder_dir, pcam_h5_dir, tmp_path, capsys
):
    data = {"kaggle": small_kaggle, "class-folders": class_folder_dir, "pcam-hdf5": pcam_h5_dir}.get(layout)
    if layout == "cache":
        data = prepare(small_kaggle, tmp_path / "cache.h5", workers=1).path
    dataset = open_dataset(data)
    assert dataset.layout == layout
    out = tmp_path / "suspects.csv"
    assert main(["label-issues", str(tiny), str(data), "--out", str(out)]) == 0
    suspects = read_suspects(out)
    assert sorted(suspects["id"]) == sorted(dataset.ids)
    given = pd.Series(dataset.labels, index=dataset.ids)
    np.testing.assert_array_equal(suspects["given_label"], given.loc[suspects["id"]].to_numpy())
    np.testing.assert_allclose(
        suspects["score"],
        np.where(suspects["given_label"] == 1, 1 - suspects["probability"], suspects["probability"]),
    )
    assert (np.diff(suspects["score"].to_numpy()) <= 0).all()
    assert "warning: unknown probabilities" in capsys.readouterr().err  # the tiny model records no data


def test_unlabelled_and_one_class_datasets_are_refused(
    tiny, unlabelled_folder_dir, small_kaggle, tmp_path, capsys
):
    out = tmp_path / "suspects.csv"
    assert main(["label-issues", str(tiny), str(unlabelled_folder_dir), "--out", str(out)]) == 2
    assert "unlabelled: there is no given label to doubt" in capsys.readouterr().err
    labels = small_kaggle / "train_labels.csv"
    labels.write_text("".join(line.rsplit(",", 1)[0] + ",1\n" if k else line + "\n"
                              for k, line in enumerate(labels.read_text().splitlines())))  # fmt: skip
    assert main(["label-issues", str(tiny), str(small_kaggle), "--out", str(out)]) == 2
    assert "needs both classes" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------- in- or out-of-sample


def test_model_trained_on_the_data_is_called_in_sample_and_its_validation_is_out_of_sample(
    workspace, pcam_h5_dir, tmp_path, capsys
):
    data = copy_kaggle_subset(tmp_path / "data", 12)
    run_dir = finished_run(workspace, data, name="label-issues-run", epochs=1)
    config = read_json(run_dir / "config.json")
    assert model_predictions_kind(config, data).kind == IN_SAMPLE
    assert model_predictions_kind(config, SAMPLE_DATASET).kind == OUT_OF_SAMPLE

    out = tmp_path / "suspects.csv"
    assert main(["label-issues", str(run_dir), str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: in-sample probabilities" in err and "probabilities: in-sample" in err
    assert "12 of 24 patches were in this model's training data" in err  # by content: its training half
    assert len(read_suspects(out)) == 24

    assert (
        main(["label-issues", str(run_dir), str(data), "--out", str(out), "--source", "run-validation"]) == 0
    )
    err = capsys.readouterr().err
    validation = read_predictions(run_dir / "val_predictions.csv")
    suspects = read_suspects(out)
    assert sorted(suspects["id"]) == sorted(validation["id"])  # the validation patches only
    assert "run's validation patches only" in err and f"{24 - len(validation)} labelled patches" in err
    ranked = rank_label_issues(validation["id"], validation["label"], validation["prob"])
    np.testing.assert_allclose(suspects["score"], ranked["score"])

    foreign = [
        "label-issues",
        str(run_dir),
        str(pcam_h5_dir),
        "--out",
        str(out),
        "--source",
        "run-validation",
    ]
    assert main(foreign) == 2
    assert "another dataset" in capsys.readouterr().err


# --------------------------------------------------------------------------- k-fold cross-validation


def test_stratified_folds_hold_both_classes():
    labels = np.array([0] * 7 + [1] * 5)
    folds = assign_folds(labels, 2, seed=0)
    for fold in (0, 1):
        assert set(labels[folds == fold]) == {0, 1}
    assert abs((folds == 0).sum() - (folds == 1).sum()) <= 1
    with pytest.raises(DatasetError, match="at least 6 patches of each class"):
        assign_folds(labels, 6)


def test_kfold_stops_on_request_resumes_and_scores_every_patch_with_a_model_that_never_saw_it(
    tmp_path, capfd
):
    """capfd, not capsys: the trainer's progress printer holds the real sys.stderr."""
    data = copy_kaggle_subset(tmp_path / "data", 30)
    dataset = open_dataset(data)
    settings = CrossValSettings(folds=2, architecture="tiny", epochs=1)
    work_dir = crossval_dir(dataset, settings)
    request_stop(work_dir)  # a stale request of an earlier job: forgotten when a new one starts

    def stop_during_the_first_fold(fold: int, folds: int, text: str) -> None:
        if fold == 0:
            request_stop(work_dir)

    with pytest.raises(RunError, match="stopped before fold 2 of 2"):
        crossval_probabilities(dataset, settings, progress=stop_during_the_first_fold)
    first = read_json(work_dir / "fold-0" / "status.json")
    assert first["state"] == "finished" and not (work_dir / "fold-1").exists()

    out = tmp_path / "suspects.csv"
    arguments = ["label-issues", str(BASELINE_MODEL), str(data), "--out", str(out)]
    assert main([*arguments, "--folds", "2", "--epochs", "1", "--arch", "tiny"]) == 0
    err = capfd.readouterr().err
    assert "probabilities: out-of-sample" in err and "2-fold cross-validation" in err
    assert read_json(work_dir / "fold-0" / "status.json")["started"] == first["started"]  # reused

    out_of_fold = stored_crossval(dataset, settings)
    assert sorted(out_of_fold["id"]) == sorted(dataset.ids)  # every labelled patch exactly once
    fold_ids = []
    for fold in (0, 1):
        status = read_json(work_dir / f"fold-{fold}" / "status.json")
        held_out = read_predictions(work_dir / f"fold-{fold}" / "val_predictions.csv")
        assert status["state"] == "finished"
        assert status["n_train"] == len(dataset) - len(held_out)  # trained without the held-out fold
        fold_ids.append(set(held_out["id"]))
    assert not fold_ids[0] & fold_ids[1]
    assert not list(work_dir.glob("*.h5"))  # the held-out caches are gone

    suspects = read_suspects(out)
    expected = rank_dataset(dataset, out_of_fold)
    assert suspects["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(suspects["score"], expected["score"])

    shutil.rmtree(work_dir / "fold-1")  # the next call reuses the stored result, no training
    assert main([*arguments, "--source", "folds", "--folds", "2", "--epochs", "1", "--arch", "tiny"]) == 0
    assert read_suspects(out)["id"].tolist() == expected["id"].tolist()
