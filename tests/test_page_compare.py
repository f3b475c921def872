"""AppTest of the Compare page (issue 12, item 4) with two real tiny models, runs of the workspace, on
real patches: the models are run on request, through the prediction cache Evaluate shares; the metrics
table, the tests in words, the overlaid curves, and the disagreement gallery with both Grad-CAMs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from page_helpers import copy_kaggle_subset, finished_run_dir, open_page, wait_for_job_end

from core.data.dataset import open_dataset
from core.diagnose.compare import (
    compare_paired,
    disagreements,
    pair_predictions,
    prediction_files,
    significance,
)
from core.evaluate.jobs import read_job
from core.evaluate.predictions import prediction_cache_key, read_predictions

PAGE_SIZE = 12


def make_run(workspace, name: str, data, epochs: int, fit_tiny_model):
    """A run directory of the workspace holding a real tiny model (the sidebar offers it)."""
    run_dir = finished_run_dir(workspace, name, {"data": [str(data)], "architecture": "tiny"})
    return fit_tiny_model(data, run_dir / "model.keras", epochs=epochs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, fit_tiny_model):
    root = tmp_path_factory.mktemp("compare")
    workspace = root / "workspace"
    data = copy_kaggle_subset(root / "data", 16)
    model_a = make_run(workspace, "tiny-a", data, 4, fit_tiny_model)
    model_b = make_run(workspace, "tiny-b", data, 1, fit_tiny_model)
    return workspace, data, model_a, model_b


def open_compare(workspace, data, model, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    return open_page(workspace, "compare", model=model, dataset=data)


def chart_traces(at, key: str) -> list[str]:
    chart = next(c for c in at.get("plotly_chart") if key in c.proto.id)
    return [trace.get("name") for trace in json.loads(chart.proto.spec)["data"]]


def test_runs_both_models_once_then_compares_them_at_the_shared_threshold(setup, monkeypatch, cold_engine):
    workspace, data, model_a, model_b = setup
    at = open_compare(workspace, data, model_a, monkeypatch)
    assert at.title[0].value.endswith("Compare")
    assert at.selectbox(key="compare_model_a").value == str(model_a)  # A defaults to the active model
    at.selectbox(key="compare_model_b").set_value(str(model_b)).run()
    notices = [i.value for i in at.info if "not computed yet" in i.value]
    assert len(notices) == 2 and "Model B (run tiny-b)" in notices[1]
    _run_both_models_as_jobs(at, setup, monkeypatch)
    paired = _paired_predictions_from_the_cache(at, data, model_a, model_b)
    groups = _check_the_comparison_at_a_threshold_where_they_disagree(at, paired)
    _check_the_disagreeing_patches_and_their_grad_cams(at, groups)


def _run_both_models_as_jobs(at, setup, monkeypatch) -> None:
    """Both models run as background prediction jobs (Evaluate's), each with its progress and Stop."""
    workspace, data, model_a, model_b = setup
    at.button(key="compare_run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert not any("not computed yet" in i.value for i in at.info)
    assert at.button(key="stop_prediction_job") and at.button(key="stop_prediction_job_1")
    assert "compare_run" not in {b.key for b in at.button}
    second = open_compare(workspace, data, model_a, monkeypatch)  # another tab attaches to both jobs
    second.selectbox(key="compare_model_b").set_value(str(model_b)).run()
    assert len(second.get("progress")) == 2 and "compare_run" not in {b.key for b in second.button}
    dataset = open_dataset(data)
    for model in (model_a, model_b):
        job = wait_for_job_end(read_job, prediction_cache_key(model, dataset))
        assert job["state"] == "finished", job


def _paired_predictions_from_the_cache(at, data, model_a, model_b):
    """The page, rerun, draws from the two prediction files the jobs wrote; their paired predictions."""
    at.run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert not any("not computed yet" in i.value for i in at.info)  # redrawn from the cache
    assert any("A − B" in frame.value.columns for frame in at.dataframe)
    file_a, file_b = prediction_files(model_a, model_b, open_dataset(data))
    assert file_a.is_file() and file_b.is_file()  # in the workspace's prediction cache, Evaluate's
    paired = pair_predictions(read_predictions(file_a), read_predictions(file_b))
    assert not np.allclose(paired["prob_a"], paired["prob_b"])
    return paired


def _check_the_comparison_at_a_threshold_where_they_disagree(at, paired):
    """A threshold between the two models' scores makes them disagree; the page's counts, table, tests'
    verdicts and curves are those of core.evaluate.compare. Returns the disagreement groups."""
    threshold = float(np.median(np.concatenate([paired["prob_a"], paired["prob_b"]])))
    at.slider(key="threshold_slider").set_value(threshold).run()
    assert not at.exception and not at.error
    threshold = at.session_state["threshold"]
    expected = compare_paired(paired, threshold)
    groups = disagreements(paired, threshold)
    assert expected["n_disagree"] > 0

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patches called differently"] == str(expected["n_disagree"])
    assert metrics["A right, B wrong"] == str(len(groups.a_right))
    assert metrics["B right, A wrong"] == str(len(groups.b_right))
    table = next(frame.value for frame in at.dataframe if "A − B" in frame.value.columns)
    assert table.iloc[0].tolist() == pytest.approx(
        [expected["auc_a"], expected["auc_b"], expected["auc_diff"]]
    )
    assert table.iloc[1, 0] == pytest.approx(expected["accuracy_a"])
    words = " ".join(m.value for m in at.markdown)
    assert f"the AUC difference **is {significance(expected['delong_p'])}** at 5 %" in words
    assert f"the accuracy difference **is {significance(expected['mcnemar_p'])}** at 5 %" in words
    assert f"DeLong p = {expected['delong_p']:.3g}" in words

    roc = chart_traces(at, "compare_roc")
    assert len(roc) == 3 and roc[0].startswith("A: run tiny-a") and roc[1].startswith("B: run tiny-b")
    assert f"AUC {expected['auc_a']:.3f}" in roc[0]
    assert len(chart_traces(at, "compare_pr")) == 2
    return groups


def _check_the_disagreeing_patches_and_their_grad_cams(at, groups) -> None:
    group = "A right, B wrong" if len(groups.a_right) else "B right, A wrong"
    rows = groups.a_right if len(groups.a_right) else groups.b_right
    at.radio(key="compare_group").set_value(group).run()
    shown = min(PAGE_SIZE, len(rows))
    assert len(at.get("image")) == shown
    first = rows.iloc[0]
    assert at.get("image")[0].proto.imgs[0].caption.endswith(f"A {first.prob_a:.3f} · B {first.prob_b:.3f}")

    at.toggle(key="compare_explain").set_value(True).run()  # both Grad-CAMs, side by side
    assert not at.exception and not at.error
    assert len(at.get("image")) == 3 * shown + 2  # patch, A's map, B's map; a colour bar per model
    captions = [img.caption for image in at.get("image") for img in image.proto.imgs]
    assert captions.count("Grad-CAM of A") == shown and captions.count("Grad-CAM of B") == shown


def test_predictions_cached_the_way_evaluate_caches_them_are_used_without_a_button(setup, monkeypatch):
    from core.evaluate.predictions import cached_predictions

    workspace, data, model_a, model_b = setup
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    for model in (model_a, model_b):  # what Evaluate's job and `python -m core evaluate` call
        cached_predictions(model, open_dataset(data))
    at = open_compare(workspace, data, model_a, monkeypatch)
    at.selectbox(key="compare_model_b").set_value(str(model_b)).run()
    assert not at.exception and not at.error
    assert not any("not computed yet" in i.value for i in at.info)
    assert any("A − B" in frame.value.columns for frame in at.dataframe)


def test_the_same_model_twice_and_an_unlabelled_dataset_are_refused_in_words(setup, monkeypatch, tmp_path):
    workspace, data, model_a, _ = setup
    at = open_compare(workspace, data, model_a, monkeypatch)
    at.selectbox(key="compare_model_b").set_value(str(model_a)).run()
    assert not at.exception
    assert any("the same model" in w.value for w in at.warning)
    assert not at.get("plotly_chart")

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for path in sorted((data / "train").iterdir())[:6]:
        shutil.copy(path, unlabelled)
    at = open_compare(workspace, unlabelled, model_a, monkeypatch)
    assert any("unlabelled" in i.value and "needs labels" in i.value for i in at.info)


def test_each_model_says_how_many_of_the_patches_it_trained_on(tiny_run, setup, tmp_path, monkeypatch):
    """Issue 19, item 3: model A, a real run, on its training data rewritten as PCam HDF5 (another path
    and layout) is warned about by content; of model B, from before training records, the page says
    that it cannot tell from the pixels."""
    from overlap_helpers import as_pcam_hdf5, run_data
    from page_helpers import copy_workspace

    from core.evaluate.predictions import cached_predictions

    _, _, _, model_b = setup
    workspace, run_dir = copy_workspace(tiny_run, tmp_path)
    same = as_pcam_hdf5(run_data(run_dir), tmp_path / "same")
    old = finished_run_dir(workspace, "before-records", {"data": [], "architecture": "tiny"})
    model_old = Path(shutil.copy(model_b, old / "model.keras"))
    model_a = run_dir / "model.keras"
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    for model in (model_a, model_old):
        cached_predictions(model, open_dataset(same))
    at = open_compare(workspace, same, model_a, monkeypatch)
    at.selectbox(key="compare_model_b").set_value(str(model_old)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning]
    assert any(
        w.startswith("Model A") and "20 of 40 patches were in this model's training data" in w
        for w in warnings
    )
    captions = [c.value for c in at.caption]  # its file stores no config either: nothing to warn by
    assert any(c.startswith("Model B") and "no record of its training patches" in c for c in captions)
