"""Issue 24, items 5 and 3: a cache that disagrees with its record (rows cut, rows duplicated, a record
that is not an object, a training cache whose bytes are damaged) is never used: it is recomputed and
the user is told once, on the Evaluate and Mistakes pages and on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from page_helpers import copy_kaggle_subset, open_page, wait_for_job_end

from core.data.cache_records import CacheRecomputedWarning
from core.data.dataset import open_dataset
from core.evaluate.predictions import cached_predictions, prediction_cache_path, read_predictions

N_PER_CLASS = 6  # 12 real patches


@pytest.fixture()
def scored(tmp_path, monkeypatch, page_model):
    """(model, data, cache CSV): a real tiny model's predictions on 12 real patches, cached in a
    throwaway workspace exactly where Evaluate, Mistakes and `core evaluate` look for them."""
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    data = copy_kaggle_subset(tmp_path / "data", N_PER_CLASS)
    cached_predictions(page_model, open_dataset(data))
    return page_model, data, prediction_cache_path(page_model, open_dataset(data))


def cut_to(csv, rows: int) -> None:
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[: rows + 1]))


def duplicate(csv, rows: int) -> None:
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines + lines[1 : rows + 1]))


def test_cli_evaluate_recomputes_a_cut_cache_and_says_so(scored, run_cli):
    model, data, csv = scored
    cut_to(csv, N_PER_CLASS)  # half the rows, the record still says 12
    code, stdout, stderr = run_cli("evaluate", model, data, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["n"] == 2 * N_PER_CLASS
    assert stderr.count("note: ") == 1 and "holds 6 rows but its record says 12" in stderr
    assert len(read_predictions(csv)) == 2 * N_PER_CLASS  # rewritten whole
    code, _, stderr = run_cli("evaluate", model, data, "--json")  # told once: the cache is sound now
    assert code == 0 and "note: " not in stderr


def test_cli_evaluate_recomputes_duplicated_rows(scored, run_cli):
    model, data, csv = scored
    duplicate(csv, 5)
    code, stdout, stderr = run_cli("evaluate", model, data, "--json")
    assert code == 0 and json.loads(stdout)["n"] == 2 * N_PER_CLASS
    assert "5 of its ids appear more than once" in stderr


def test_a_record_holding_a_list_is_recomputed_not_a_traceback(scored):
    model, data, csv = scored
    csv.with_suffix(".json").write_text("[1, 2, 3]")
    with pytest.warns(CacheRecomputedWarning, match="holds a list, not an object"):
        frame = cached_predictions(model, open_dataset(data))
    assert len(frame) == 2 * N_PER_CLASS and "holds a list" in frame.attrs["recomputed"]
    assert cached_predictions(model, open_dataset(data)).attrs.get("recomputed") is None


def test_evaluate_page_recomputes_a_cut_cache_in_a_job_and_says_so(scored):
    from core.evaluate.jobs import read_job

    model, data, csv = scored
    cut_to(csv, N_PER_CLASS)
    at = open_page(csv.parents[2], "evaluate", model=model, dataset=data)
    assert not at.exception and not at.error, [e.value for e in at.error]
    (warning,) = [w.value for w in at.warning if "was damaged" in w.value]
    assert "holds 6 rows but its record says 12" in warning and "computed again" in warning
    assert not at.metric  # no report on half the patches

    job = wait_for_job_end(read_job, csv.stem)
    assert job["state"] == "finished", job
    at.run()
    assert not at.exception and not at.error
    assert not any("was damaged" in w.value for w in at.warning)  # said once
    assert "AUC" in {m.label for m in at.metric}
    assert len(read_predictions(csv)) == 2 * N_PER_CLASS


def test_mistakes_page_with_duplicated_rows_does_not_crash(scored):
    from core.evaluate.jobs import read_job

    model, data, csv = scored
    duplicate(csv, 4)
    at = open_page(csv.parents[2], "mistakes", model=model, dataset=data)
    assert not at.exception, at.exception  # was: unhashable type: 'Series'
    assert any("4 of its ids appear more than once" in w.value for w in at.warning)
    assert wait_for_job_end(read_job, csv.stem)["state"] == "finished"
    at.run()
    assert not at.exception and not at.error
    assert len(read_predictions(csv)) == 2 * N_PER_CLASS


def test_a_damaged_feature_cache_is_recomputed(tmp_path, page_model):
    from core.diagnose.features import cached_features, feature_cache_path

    dataset = open_dataset(copy_kaggle_subset(tmp_path / "data", N_PER_CLASS))
    first = cached_features(page_model, dataset, cache_dir=tmp_path / "features")
    path = feature_cache_path(page_model, dataset, tmp_path / "features")
    with np.load(path) as stored:
        halves = {key: stored[key][:N_PER_CLASS] if len(stored[key]) else stored[key] for key in stored}
    with open(path, "wb") as handle:
        np.savez(handle, **halves)  # the first 6 of 12 patches, the record untouched
    with pytest.warns(CacheRecomputedWarning, match="holds 6 rows but its record says 12"):
        again = cached_features(page_model, dataset, cache_dir=tmp_path / "features")
    assert again.ids == first.ids and not again.from_cache
    assert cached_features(page_model, dataset, cache_dir=tmp_path / "features").from_cache


def test_training_rebuilds_a_damaged_training_cache_and_says_so(tmp_path, monkeypatch):
    from core.data.cache import cache_path_for, prepare
    from core.train.config import TrainConfig
    from core.train.data import prepare_data

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    data = copy_kaggle_subset(tmp_path / "data", N_PER_CLASS)
    target = cache_path_for(open_dataset(data))
    prepare(data, target, workers=1)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # a copy cut short
    said: list[str] = []
    training = prepare_data(TrainConfig(data=[str(data)], workers=1), said.append)
    assert any("is damaged" in line and "rebuilding it" in line and target.name in line for line in said)
    assert len(training.train) + len(training.val) == 2 * N_PER_CLASS
    assert len(open_dataset(target)) == 2 * N_PER_CLASS


def test_cross_validation_recomputes_duplicated_out_of_fold_rows(tmp_path, monkeypatch):
    from core.diagnose.crossval import RESULT_FILE, CrossValSettings, crossval_dir, crossval_probabilities

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    dataset = open_dataset(copy_kaggle_subset(tmp_path / "data", 10))
    settings = CrossValSettings(folds=2, architecture="tiny", epochs=1)
    crossval_probabilities(dataset, settings)
    work_dir = crossval_dir(dataset, settings)
    duplicate(work_dir / RESULT_FILE, 3)
    duplicate(work_dir / "fold-0" / "val_predictions.csv", 2)
    with pytest.warns(CacheRecomputedWarning) as said:
        again = crossval_probabilities(dataset, settings)
    messages = [str(w.message) for w in said]
    assert any(RESULT_FILE in m and "3 of its ids appear more than once" in m for m in messages)
    assert any("val_predictions.csv" in m and "2 of its ids appear more than once" in m for m in messages)
    assert sorted(again["id"]) == sorted(dataset.ids)  # every patch exactly once


def test_feature_map_recomputes_a_damaged_feature_cache_and_says_so(tmp_path, monkeypatch, page_model):
    from core.diagnose.features import cached_features, feature_cache_path, read_features

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    data = copy_kaggle_subset(tmp_path / "data", N_PER_CLASS)
    dataset = open_dataset(data)
    cached_features(page_model, dataset)
    path = feature_cache_path(page_model, dataset)
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored}
    arrays["ids"] = np.concatenate([arrays["ids"][:-2], arrays["ids"][:2]])  # two ids twice, two gone
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    at = open_page(tmp_path / "workspace", "feature_map", model=page_model, dataset=data)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("2 of its ids appear more than once" in w.value for w in at.warning)
    assert sorted(read_features(path).ids) == sorted(dataset.ids)  # computed again, whole
    at.run()
    assert not any("was damaged" in w.value for w in at.warning)  # said once


def test_cli_compare_recomputes_a_cut_cache_and_says_so(scored, tiny_kaggle_model, run_cli):
    model, data, csv = scored
    _, other = tiny_kaggle_model(5)
    assert run_cli("compare", model, other, data, "--json")[0] == 0  # both models' caches exist now
    cut_to(csv, 3)
    code, stdout, stderr = run_cli("compare", model, other, data, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["n"] == 2 * N_PER_CLASS
    assert stderr.count("note: ") == 1 and "holds 3 rows but its record says 12" in stderr
