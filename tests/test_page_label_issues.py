"""AppTest of the Label issues page on a real finished run and real patches: the suspects most
suspect first with their scores, the kind of probabilities said out loud (a run's validation is
out-of-sample, the model on its own training data in-sample), Grad-CAM on demand, the CSV, and a
k-fold cross-validation started from the page as a real background job."""

from __future__ import annotations

import time

import pytest
from page_helpers import open_page, page_on_run, run_on_kaggle_copy

from core.constants import LABEL_NAMES
from core.data.dataset import open_checked
from core.diagnose import crossval
from core.diagnose.features import cached_features
from core.diagnose.label_issues import rank_dataset, rank_predictions
from core.diagnose.neighbours import DEFAULT_K
from core.evaluate.predictions import cached_predictions, read_predictions

JOB_TIMEOUT = 240  # seconds for the background cross-validation (TensorFlow import + 2 tiny folds)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("label-issues") / "workspace"
    data = workspace / "data"  # inside the workspace: a data root
    return workspace, data, run_on_kaggle_copy(workspace, data, 12, epochs=1)


@pytest.fixture(autouse=True)
def home(run, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(run[0]))


def caption_of(row) -> str:
    return (
        f"given {LABEL_NAMES[int(row.given_label)]} · P(tumour)={row.probability:.3f} · score {row.score:.3f}"
    )


def test_run_validation_suspects_most_suspect_first_with_gradcam_and_csv(run, monkeypatch):
    workspace, _, run_dir = run
    at, _ = page_on_run((workspace, run_dir), "label_issues", monkeypatch)
    assert not at.exception and not at.error
    expected = rank_predictions(read_predictions(run_dir / "val_predictions.csv"))
    assert any("out-of-sample" in s.value and "validation patches only" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Patches ranked"] == str(len(expected))
    assert metrics["Flagged by confident learning"] == str(int(expected["flagged"].sum()))
    images = at.get("image")
    captions = [image.proto.imgs[0].caption for image in images]
    assert captions[: len(expected)] == [
        caption_of(row) + (" · flagged" if row.flagged else "") for row in expected.itertuples()
    ]  # most suspect first, given label, P(tumour) and score under each patch
    assert any(str(expected["id"].iloc[0]) in m.value for m in at.markdown)  # the detail view: the first
    export = at.get("download_button")[0]
    assert "id, given_label, probability, score" in export.label and export.proto.url

    at.toggle(key="label_issues_explain").set_value(True).run()
    assert not at.exception and not at.error
    # overlays + detail patch + its overlay + the colour bars of the gallery and of the detail
    assert len(at.get("image")) == len(expected) + 2 + 2


def test_the_model_on_its_own_training_data_is_called_in_sample(run):
    workspace, data, run_dir = run
    cached_predictions(run_dir, open_checked(data))  # what the page's background job would store
    at = open_page(workspace, "label_issues", model=run_dir / "model.keras", dataset=data)
    at.radio(key="prediction_source_kind").set_value("active").run()
    assert not at.exception and not at.error
    (badge,) = [w.value for w in at.warning if "in-sample" in w.value]
    assert badge.startswith("**in-sample** · 12 of 24 patches were in this model's training data")
    assert not any("out-of-sample" in s.value for s in at.success)
    assert {m.label: m.value for m in at.metric}["Patches ranked"] == "24"
    assert any("open the Feature map page" in c.value for c in at.caption)  # no features cached yet

    cached_features(run_dir / "model.keras", open_checked(data))  # what the Feature map page stores
    at.run()
    neighbours = at.dataframe[-1].value  # the last table of the page: the suspect's neighbours
    suspect = at.selectbox(key="label_issues_detail").value
    assert neighbours["id"].iloc[0] == suspect and len(neighbours) == DEFAULT_K + 1  # itself, then k others


def test_kfold_started_from_the_page_runs_in_the_background_and_ranks_every_patch(run):
    workspace, data, run_dir = run
    at = open_page(workspace, "label_issues", model=run_dir / "model.keras", dataset=data)
    at.radio(key="label_issues_source").set_value("folds").run()
    at.number_input(key="label_issues_folds").set_value(2).run()
    at.number_input(key="label_issues_epochs").set_value(1).run()
    assert at.selectbox(key="label_issues_arch").value == "tiny"  # the active model's architecture
    assert not at.exception and not at.error
    assert any("Not computed yet" in i.value for i in at.info)
    assert "label-issues" in at.code[0].value and "--folds 2" in at.code[0].value

    at.button(key="label_issues_start").click().run()
    assert not at.exception and not at.error
    dataset = open_checked(data)
    settings = crossval.CrossValSettings(folds=2, architecture="tiny", epochs=1)
    work_dir = crossval.crossval_dir(dataset, settings)
    deadline = time.monotonic() + JOB_TIMEOUT
    while crossval.stored_crossval(dataset, settings) is None:
        assert time.monotonic() < deadline, (work_dir / crossval.LOG_FILE).read_text()
        time.sleep(1)
    while crossval.progress_of(dataset, settings).running:  # the job still writes its CSV
        time.sleep(0.5)

    at.run()
    assert not at.exception and not at.error
    assert any("every patch" in s.value and "2-fold" in s.value for s in at.success)
    expected = rank_dataset(dataset, crossval.stored_crossval(dataset, settings))
    assert {m.label: m.value for m in at.metric}["Patches ranked"] == str(len(dataset)) == str(len(expected))
    assert at.get("image")[0].proto.imgs[0].caption.startswith(caption_of(next(expected.itertuples())))


def test_in_or_out_of_sample_is_decided_by_the_pixels_and_said_for_label_errors(run):
    """Issue 19, items 3 and 8: copies of the run's patches under another path and layout (PCam HDF5)
    are in-sample when it trained on them; the page says what goes wrong for label errors (not
    Evaluate's 'far too optimistic'), and its badge does not repeat itself."""
    from overlap_helpers import as_pcam_hdf5

    workspace, data, run_dir = run
    validation = set(read_predictions(run_dir / "val_predictions.csv")["id"])
    trained = set(open_checked(data).ids) - validation
    copies = {
        "trained": as_pcam_hdf5(data, workspace / "copies" / "trained", ids=trained),
        "unseen": as_pcam_hdf5(data, workspace / "copies" / "unseen", ids=validation),
    }
    waiting = open_page(workspace, "label_issues", model=run_dir / "model.keras", dataset=copies["trained"])
    waiting.radio(key="prediction_source_kind").set_value("active").run()
    assert any("not computed yet" in i.value for i in waiting.info)
    assert not waiting.warning  # not Evaluate's warning while the predictions are still to be made
    pages = {}
    for name, copy in copies.items():
        cached_predictions(run_dir, open_checked(copy))  # what the page's background job would store
        at = open_page(workspace, "label_issues", model=run_dir / "model.keras", dataset=copy)
        at.radio(key="prediction_source_kind").set_value("active").run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        pages[name] = at

    warnings = [w.value for w in pages["trained"].warning]
    (badge,) = [w for w in warnings if w.startswith("**in-sample**")]
    assert "12 of 12 patches were in this model's training data" in badge
    assert "wrong ones included" in badge and "never found" in badge
    assert not any("far too optimistic" in w or "measure fit" in w for w in warnings)
    (badge,) = [s.value for s in pages["unseen"].success]
    assert badge.startswith("**out-of-sample** · 0 of 12 patches were in this model's training data")
    assert "Out-of-sample" not in badge  # said once, in the badge's own word
    (intro,) = [c.value for c in pages["unseen"].caption if c.value.startswith("Public patch labels")]
    assert "a wrong label both teaches a model the wrong thing" in intro  # a reason, not an instruction
