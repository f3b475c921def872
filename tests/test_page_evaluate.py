"""AppTest of the Evaluate page on a real finished run: cards, one threshold driving every panel,
no model call, the split warning, and the patches of a confusion-matrix cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from page_helpers import (
    PAGE_SCRIPTS,
    app_test,
    copy_kaggle_subset,
    copy_workspace,
    open_page,
    page_on_run,
    wait_for_job_end,
)

from core.evaluate.metrics import confusion_at, threshold_presets
from core.evaluate.predictions import read_predictions
from core.jobs.status import LOADING_PHASE, QUEUED_PHASE

CARD_LABELS = {
    "AUC",
    "Accuracy",
    "Sensitivity",
    "Specificity",
    "Precision",
    "F1",
    "Balanced accuracy",
    "Average precision",
    "Log loss",
    "Brier score",
    "ECE",
}


@pytest.fixture(scope="module")
def run_without_model(tiny_run, tmp_path_factory):
    """A copy of a real finished run whose model files are then deleted: any model call would fail."""
    workspace, run_dir = copy_workspace(tiny_run, tmp_path_factory.mktemp("evaluate"))
    for name in ("model.keras", "best.keras"):
        (run_dir / name).unlink(missing_ok=True)
    return workspace, run_dir


@pytest.fixture()
def evaluate(run_without_model, monkeypatch):
    return page_on_run(run_without_model, "evaluate", monkeypatch)


def confusion_counts(at) -> list[int]:
    # the counts under the heatmap: one row, columns TN FP FN TP
    table = next(frame.value for frame in at.dataframe if "TN" in frame.value.columns)
    return [int(table[cell].iloc[0]) for cell in ("TN", "FP", "FN", "TP")]


def test_cards_and_the_threshold_drive_the_confusion_matrix_without_a_model(evaluate):
    at, run_dir = evaluate
    assert not at.error, [e.value for e in at.error]
    assert CARD_LABELS <= {m.label for m in at.metric}
    assert any("95 % CI" in c.value for c in at.caption)
    assert any("No input-quality flags" in c.value for c in at.caption)  # a run's file has none
    assert not any(t.label == "Leave out flagged patches" for t in at.toggle)
    predictions = read_predictions(run_dir / "val_predictions.csv")
    labels, probs = predictions["label"].to_numpy(), predictions["prob"].to_numpy()
    (tn, fp), (fn, tp) = confusion_at(labels, probs, 0.5)
    assert confusion_counts(at) == [tn, fp, fn, tp]

    lowest = float(np.min(probs))
    at.slider(key="threshold_slider").set_value(lowest).run()  # everything called tumour
    assert not at.exception and not at.error
    assert at.session_state["threshold"] == pytest.approx(lowest)
    n_negative, n_positive = int((labels == 0).sum()), int((labels == 1).sum())
    assert confusion_counts(at) == [0, n_negative, 0, n_positive]
    assert confusion_counts(at) != [tn, fp, fn, tp]

    youden = threshold_presets(labels, probs)["youden"]
    at.button(key="preset-youden").click().run()
    assert at.session_state["threshold"] == pytest.approx(youden)
    (tn, fp), (fn, tp) = confusion_at(labels, probs, youden)
    assert confusion_counts(at) == [tn, fp, fn, tp]
    assert at.slider(key="threshold_slider").value == pytest.approx(youden)


def test_split_warning_curves_and_cell_patches(evaluate):
    at, _ = evaluate
    assert any("random patch-level split" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) >= 5  # confusion, ROC, PR, histogram, reliability
    at.radio(key="evaluate_cell").set_value("TN").run()
    assert not at.exception
    n_true_negative = int(at.dataframe[0].value["TN"].iloc[0])
    assert n_true_negative > 0
    assert len(at.get("image")) == min(24, n_true_negative)  # the cell's patches, read by id


def test_active_model_predictions_are_computed_in_a_job_then_read_from_disk(
    run_without_model, page_model, tmp_path, monkeypatch
):
    """Issue 9, items 6b and 1: the model runs in a background job that a second session finds
    again; the results replace the 'not computed' banner and the threshold stays at 0.500."""
    from core.data.dataset import open_dataset
    from core.evaluate.jobs import read_job
    from core.evaluate.predictions import prediction_cache_key

    workspace, _ = run_without_model
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    data = copy_kaggle_subset(tmp_path / "active", 6)
    model = page_model

    def session():
        return open_page(workspace, "evaluate", model=model, dataset=data)

    at = session()
    assert at.radio(key="prediction_source_kind").value == "active"  # the sidebar's model and dataset
    assert not at.exception and not at.metric  # nothing computed until asked
    assert any("not computed yet" in i.value for i in at.info)
    cache = workspace / "cache" / "predictions"
    assert not list(cache.glob("*.csv"))
    at.button(key="start_prediction_job").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not any("not computed yet" in i.value for i in at.info)
    assert at.button(key="stop_prediction_job")  # the job runs: progress and a Stop button
    (bar,) = at.get("progress")  # queued or while TensorFlow starts, it says so (not "Predicting… 0/12")
    assert bar.proto.text in {f"tiny.keras on active: {phase}" for phase in (QUEUED_PHASE, LOADING_PHASE)}

    second = session()  # another tab (or a reload) attaches to the same job
    assert not any("not computed yet" in i.value for i in second.info)

    job = wait_for_job_end(read_job, prediction_cache_key(model, open_dataset(data)))
    assert job["state"] == "finished", job
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (stored,) = cache.glob("*.csv")
    assert len(read_predictions(stored)) == 12 and "AUC" in {m.label for m in at.metric}
    assert "quality" in read_predictions(stored).columns  # the job stores the input-quality flags too
    assert not any("not computed yet" in i.value for i in at.info)
    assert value_sent_to_browser(at.slider(key="threshold_slider")) == pytest.approx(0.5)
    written = stored.stat().st_mtime_ns

    at.slider(key="threshold_slider").set_value(0.0).run()
    assert not at.exception and confusion_counts(at) == [0, 6, 0, 6]
    assert stored.stat().st_mtime_ns == written
    assert "start_prediction_job" not in {b.key for b in at.button}


def value_sent_to_browser(slider) -> float:
    """What the browser's slider shows after this run: the value Streamlit pushes (set_value), else
    the element's default, which the browser falls back to when it mounts the slider afresh."""
    proto = slider.proto
    return float(proto.value[0] if proto.set_value else proto.default[0])


def test_threshold_survives_a_run_without_the_slider(evaluate):
    """Issue 9, item 1: a run in which the slider is not drawn (here: no model for the active
    source) must not let the browser remount the slider at 0.000 and send that back."""
    at, _ = evaluate
    at.slider(key="threshold_slider").set_value(0.3).run()
    assert value_sent_to_browser(at.slider(key="threshold_slider")) == pytest.approx(0.3)
    at.session_state["model_path"] = None
    at.radio(key="prediction_source_kind").set_value("active").run()
    assert not at.exception and not at.slider  # the slider is gone for one run
    at.radio(key="prediction_source_kind").set_value("run").run()
    assert not at.exception
    assert at.session_state["threshold"] == pytest.approx(0.3)
    assert value_sent_to_browser(at.slider(key="threshold_slider")) == pytest.approx(0.3)
    at.toggle(key="hist_log").set_value(True).run()  # any later click keeps it
    assert at.session_state["threshold"] == pytest.approx(0.3)


def opened_from_a_url_with_threshold(text: str):
    """The Evaluate page on the run's predictions, opened from a link carrying ?threshold=`text`."""
    at = app_test()
    at.query_params["threshold"] = text
    at.session_state["prediction_source_kind"] = "run"
    at.run()
    at.switch_page(PAGE_SCRIPTS["evaluate"])
    return at.run()


def test_threshold_is_read_from_and_written_to_the_url(run_without_model, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(run_without_model[0]))
    at = opened_from_a_url_with_threshold("0.25")
    assert not at.exception
    assert at.session_state["threshold"] == pytest.approx(0.25)
    assert at.slider(key="threshold_slider").value == pytest.approx(0.25)
    at.slider(key="threshold_slider").set_value(0.4).run()
    assert float(at.query_params["threshold"]) == pytest.approx(0.4)


@pytest.mark.parametrize("bad", ["abc", "1.5", "-0.1", "nan"])
def test_an_invalid_threshold_in_the_url_is_ignored(run_without_model, monkeypatch, bad):
    monkeypatch.setenv("PATCHLENS_HOME", str(run_without_model[0]))
    at = opened_from_a_url_with_threshold(bad)
    assert not at.exception and not at.error
    assert at.session_state["threshold"] == pytest.approx(0.5)


def bootstrap_computations() -> int:
    """How many bootstrap intervals the page has computed: one st.cache_data entry each."""
    from streamlit.runtime.caching.cache_data_api import _data_caches

    caches = [c for by_key in _data_caches._function_caches.values() for c in by_key.values()]
    bootstrap = [c for c in caches if c.display_name.split(".")[-1] == "interval"]
    return sum(len(entries) for c in bootstrap for entries in c.get_stats().values())


def test_moving_the_threshold_does_not_rerun_the_auc_bootstrap(evaluate):
    """Issue 10: the 1,000-resample bootstrap is cached (AUC once; accuracy once per threshold)."""
    import streamlit as st

    at, _ = evaluate
    st.cache_data.clear()
    at.run()
    assert bootstrap_computations() == 2  # AUC, accuracy at 0.5
    at.slider(key="threshold_slider").set_value(0.3).run()
    assert bootstrap_computations() == 3  # + accuracy at 0.3; the AUC interval is reused
    at.slider(key="threshold_slider").set_value(0.5).run()
    at.toggle(key="hist_log").set_value(True).run()
    assert not at.exception and bootstrap_computations() == 3


def test_the_page_stops_a_job_and_reports_a_failed_one(
    run_without_model, page_model, tmp_path, monkeypatch, cold_engine
):
    from core.data.dataset import open_dataset
    from core.evaluate.jobs import job_dir, read_job
    from core.evaluate.predictions import prediction_cache_key
    from core.train.runs import write_status

    workspace, _ = run_without_model
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    data = copy_kaggle_subset(tmp_path / "stopped", 4)
    model = page_model
    key = prediction_cache_key(model, open_dataset(data))
    at = open_page(workspace, "evaluate", model=model, dataset=data)
    at.button(key="start_prediction_job").click().run()
    at.button(key="stop_prediction_job").click().run()  # lands while the engine still starts
    assert wait_for_job_end(read_job, key)["state"] == "stopped"
    at.run()
    assert not at.exception and any("was stopped" in i.value for i in at.info)
    assert at.button(key="start_prediction_job") and not at.metric

    write_status(job_dir(key), "failed", error="out of memory (a test's own words)")
    at.run()
    assert any("out of memory (a test's own words)" in e.value for e in at.error)
    assert at.button(key="start_prediction_job")  # and it can be run again


# --------------------------------------------------------------------------- issue 19: overlap, URL, stopping


@pytest.fixture(scope="module")
def overlap_setup(tiny_run, page_model, tmp_path_factory):
    """(workspace, run model, the run's data as PCam HDF5, its validation patches alone as PCam HDF5):
    another path and layout, so only the pixels say what the run trained on. Predictions of the run's
    model and of page_model (no training record) are cached as the page's job would."""
    from overlap_helpers import as_pcam_hdf5, run_data

    from core.data.dataset import open_checked
    from core.evaluate.predictions import cached_predictions

    workspace, run_dir = copy_workspace(tiny_run, tmp_path_factory.mktemp("overlap"))
    validation = set(read_predictions(run_dir / "val_predictions.csv")["id"])
    same = as_pcam_hdf5(run_data(run_dir), workspace.parent / "same")
    unseen = as_pcam_hdf5(run_data(run_dir), workspace.parent / "unseen", ids=validation)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(workspace))
        for model, data in ((run_dir, same), (run_dir, unseen), (page_model, same)):
            cached_predictions(model, open_checked(data))
    return workspace, run_dir / "model.keras", same, unseen


def test_evaluate_says_how_many_patches_the_model_trained_on_by_their_pixels(
    overlap_setup, page_model, monkeypatch
):
    """Issue 19, item 3: the run's training patches as PCam HDF5 under another path still count."""
    workspace, model, same, unseen = overlap_setup
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    at = open_page(workspace, "evaluate", model=model, dataset=same)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("20 of 40 patches were in this model's training data" in w.value for w in at.warning)
    assert "AUC" in {m.label for m in at.metric}

    at = open_page(workspace, "evaluate", model=model, dataset=unseen)
    assert any("0 of 20 patches were in this model's training data" in c.value for c in at.caption)
    assert not any("training data" in w.value for w in at.warning)

    at = open_page(workspace, "evaluate", model=page_model, dataset=same)  # a model from before records
    assert any("no record of its training patches" in c.value for c in at.caption)


@pytest.fixture(scope="module")
def flagged(page_model, tmp_path_factory):
    """(workspace, dataset with patches the input-quality gate flags, model): real patches plus
    made-up non-H&E images (tests/quality_folders.py), predictions cached as the page's job would."""
    from quality_folders import mixed_class_folders

    from core.data.dataset import open_checked
    from core.evaluate.predictions import cached_predictions

    root = tmp_path_factory.mktemp("evaluate-url")
    data = mixed_class_folders(root / "classes", n_per_class=8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(root / "workspace"))
        cached_predictions(page_model, open_checked(data))
    return root / "workspace", data, page_model


def reloaded(workspace, data, model, url: dict[str, str]):
    """A new session of the Evaluate page opened from a URL carrying `url` (a reload, a second browser)."""
    at = app_test()
    for key, value in url.items():
        at.query_params[key] = value
    at.session_state["model_path"], at.session_state["dataset_path"] = str(model), str(data)
    at.run()
    at.switch_page(PAGE_SCRIPTS["evaluate"])
    return at.run()


def auc_card(at) -> str:
    return next(m.value for m in at.metric if m.label == "AUC")


def test_leave_out_and_tta_survive_a_reload_and_a_stop_from_another_session_shows_stopping(
    flagged, monkeypatch, cold_engine
):
    """Issue 19, items 5 and 10: both are in the URL, so a reload (or a second browser with the link)
    keeps the headline AUC without the flagged patches and finds the running TTA job; a Stop from
    the other session reads 'stopping…' here, without a Stop button, until the job has ended."""
    from core.data.dataset import open_dataset
    from core.evaluate.jobs import read_job, stop_job
    from core.evaluate.predictions import prediction_cache_key

    workspace, data, model = flagged
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    at = open_page(workspace, "evaluate", model=model, dataset=data)
    all_patches = auc_card(at)
    at.toggle(key="evaluate_leave_out_flagged").set_value(True).run()
    left_out = auc_card(at)
    assert left_out != all_patches and at.query_params["leave_out"] == "1"

    again = reloaded(workspace, data, model, {"leave_out": "1"})
    assert not again.exception and again.toggle(key="evaluate_leave_out_flagged").value
    assert auc_card(again) == left_out

    at.checkbox(key="prediction_source_tta").check().run()
    assert at.query_params["tta"] == "1"
    at.button(key="start_prediction_job").click().run()
    assert at.button(key="stop_prediction_job")
    second = reloaded(workspace, data, model, {"leave_out": "1", "tta": "1"})
    assert second.checkbox(key="prediction_source_tta").value
    assert second.button(key="stop_prediction_job") and not any(
        "not computed" in i.value for i in second.info
    )

    key = prediction_cache_key(model, open_dataset(data), tta=True)
    stop_job(key)  # the other session's Stop, while TensorFlow still starts in the cold engine's worker
    at.run()
    bars = at.get("progress")
    if bars:  # still running: it ends at its next batch, and until then the page says it is stopping
        (bar,) = bars
        assert "stopping…" in bar.proto.text and not any(b.key == "stop_prediction_job" for b in at.button)
    else:  # cancelled before it started (the engine's rule), or ended at its next batch already
        assert read_job(key)["state"] == "stopped"
    assert wait_for_job_end(read_job, key)["state"] == "stopped"
    at.run()
    assert any("was stopped" in i.value for i in at.info) and not at.get("progress")


def test_a_broken_training_record_is_said_in_words(overlap_setup, monkeypatch):
    import shutil

    workspace, model, same, _ = overlap_setup
    broken = Path(shutil.copytree(model.parent, model.parent.parent / "broken-record"))
    (broken / "training_hashes.npy").write_bytes(b"not a numpy file")
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    at = open_page(workspace, "evaluate", model=broken / "model.keras", dataset=same)
    assert not at.exception
    assert any("not a readable list of patch hashes" in e.value for e in at.error)


def test_a_large_dataset_is_not_hashed_on_the_page_and_its_overlap_comes_with_the_predictions(
    workspace, tmp_path, monkeypatch
):
    """Counting the training overlap of a large dataset would hold the page; the prediction job hashes
    the patches it scores, and the count appears with the predictions."""
    import ui.prediction_source
    from core.data.dataset import open_dataset
    from core.evaluate.jobs import read_job
    from core.evaluate.predictions import prediction_cache_key
    from core.settings import BASELINE_MODEL

    monkeypatch.setattr(ui.prediction_source, "PAGE_HASH_LIMIT", 4)  # 8 patches count as large here
    data = copy_kaggle_subset(tmp_path / "large", 4)
    at = open_page(workspace, "evaluate", model=BASELINE_MODEL, dataset=data)
    assert not list((workspace / "cache").glob("hashes/*.npy"))
    at.button(key="start_prediction_job").click().run()
    assert (
        wait_for_job_end(read_job, prediction_cache_key(BASELINE_MODEL, open_dataset(data)))["state"]
        == "finished"
    )
    at.run()
    assert not at.exception
    assert any("0 of 8 patches were in this model's training data" in c.value for c in at.caption)
