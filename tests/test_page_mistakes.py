"""AppTest of the Mistakes page on a real finished run: the gallery of mistakes at the shared
threshold, the filters, Grad-CAM on demand, the detail view and the CSV export."""

from __future__ import annotations

import json

import pytest
from page_helpers import PAGE_SCRIPTS, app_test, copy_workspace, open_page, page_on_run

from core.evaluate.interpret import Interpretation
from core.evaluate.predictions import read_predictions


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    return copy_workspace(tiny_run, tmp_path_factory.mktemp("mistakes"))


@pytest.fixture()
def page(run, monkeypatch):
    return page_on_run(run, "mistakes", monkeypatch)


def test_gallery_filters_gradcam_and_csv_export(page):
    at, run_dir = page
    predictions = read_predictions(run_dir / "val_predictions.csv")
    # A threshold in the middle of the scores guarantees mistakes of both kinds on a weak tiny model.
    threshold = float(predictions["prob"].median())
    at.slider(key="threshold_slider").set_value(threshold).run()
    assert not at.exception and not at.error
    expected = Interpretation(predictions).mistakes(threshold)
    assert len(expected) > 0
    assert any("random patch-level split" in w.value for w in at.warning)
    assert any("No input-quality flags" in c.value for c in at.caption)  # a run's file has none
    assert len(at.get("image")) == min(24, len(expected)) + 1  # gallery + detail view patch
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shown after filters"] == str(len(expected))

    export = at.get("download_button")[0]
    assert export.label.startswith("Download this list")
    assert export.proto.url and not export.proto.disabled  # the CSV is attached and can be downloaded

    at.radio(key="mistakes_kind").set_value("false negatives").run()
    only_fn = Interpretation(predictions).mistakes(threshold, kind="false negative")
    assert {m.label: m.value for m in at.metric}["Shown after filters"] == str(len(only_fn))

    at.radio(key="mistakes_kind").set_value("both").run()
    at.toggle(key="mistakes_explain").set_value(True).run()  # Grad-CAM for this page only
    assert not at.exception and not at.error
    # overlays + detail patch + its overlay + the colour bars of the gallery and of the detail
    assert len(at.get("image")) == min(24, len(expected)) + 2 + 2
    assert any(str(expected["id"].iloc[0]) in m.value for m in at.markdown)  # most confident first


def test_opens_on_the_sidebars_model_and_dataset_and_names_a_training_overlap(run, monkeypatch):
    """Issue 9, item 9: the default source is the active model on the active dataset; when that
    model is a run's and the dataset its training data, the page says so before any computation."""
    workspace, run_dir = run
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    training_data = json.loads((run_dir / "config.json").read_text())["data"][0]
    at = open_page(workspace, "mistakes", model=run_dir / "model.keras", dataset=training_data)
    assert not at.exception
    assert at.radio(key="prediction_source_kind").value == "active"
    assert any("training data" in w.value for w in at.warning)
    assert any("not computed yet" in i.value and "tiny-run" in i.value for i in at.info)


def reload_with(link: dict):
    """A new session of the Mistakes page opened with the URL parameters `link`, on the run's predictions."""
    at = app_test()
    at.query_params.update(link)
    at.run()
    at.switch_page(PAGE_SCRIPTS["mistakes"]).run()
    at.radio(key="prediction_source_kind").set_value("run").run()
    assert not at.exception
    return at


def test_filters_live_in_the_url_so_a_reload_keeps_them(run, monkeypatch):
    """Issue 19 item 6: the kind, P(tumour) range and threshold a user set survive a reload (a new
    session with the same URL) and a copied link; a bad value in a link is ignored."""
    at, _ = page_on_run(run, "mistakes", monkeypatch)
    at.radio(key="mistakes_kind").set_value("false negatives").run()
    at.slider(key="mistakes_range").set_value((0.1, 0.9)).run()
    assert not at.exception
    link = {key: at.query_params[key] for key in at.query_params}
    assert link["mistakes_kind"] == "false negatives" and link["mistakes_range"] == "0.10-0.90"

    reloaded = reload_with(link)
    assert reloaded.radio(key="mistakes_kind").value == "false negatives"
    assert reloaded.slider(key="mistakes_range").value == (0.1, 0.9)

    reloaded.radio(key="mistakes_kind").set_value("both").run()
    reloaded.slider(key="mistakes_range").set_value((0.0, 1.0)).run()
    assert "mistakes_kind" not in reloaded.query_params and "mistakes_range" not in reloaded.query_params

    broken = reload_with({"mistakes_kind": "everything", "mistakes_range": "0.9-0.1"})
    assert broken.radio(key="mistakes_kind").value == "both"
    assert broken.slider(key="mistakes_range").value == (0.0, 1.0)
