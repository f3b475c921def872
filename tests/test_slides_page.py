"""The Slides page (AppTest of the real app): a cohort folder inside the data roots with labels and
annotations, the finished cohort's table, slide-level metrics and a slide's map with outlines; a
running cohort's progress and Stop; the same job found again from the URL after a reload."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from page_helpers import PAGE_SCRIPTS, app_test, open_page
from slides_cohort import build_cohort

from core.cli import main
from core.slides.aggregate import DEFAULT_AGGREGATE
from core.slides.jobs import job_dir, job_key, output_dir, run_job
from core.slides.metrics import labelled_scores, slide_metrics, slide_presets
from core.slides.task import SlideOptions
from core.train.runs import write_status


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(10)[1]


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    (tmp_path / "workspace").mkdir()
    return tmp_path / "workspace"


def choose(at, cohort):
    at.text_input(key="slides_folder").input(str(cohort["slides"])).run()
    at.text_input(key="slides_labels").input(str(cohort["labels"])).run()
    at.text_input(key="slides_annotations").input(str(cohort["annotations"])).run()
    assert not at.exception, at.exception
    return at


def key_of(model_path, cohort) -> str:
    return job_key(model_path, cohort["slides"], labels=cohort["labels"], annotations=cohort["annotations"],
                   options=SlideOptions())  # fmt: skip


def reload_of(at, model_path):
    """A new session (a reload) of the Slides page with `at`'s URL."""
    reloaded = app_test()
    reloaded.query_params.update(at.query_params)
    reloaded.session_state["model_path"] = str(model_path)
    reloaded.run()
    reloaded.switch_page(PAGE_SCRIPTS["slides"]).run()
    assert not reloaded.exception, reloaded.exception
    return reloaded


def texts(at) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error])


def test_a_folder_outside_the_data_roots_is_refused(workspace, model_path, tmp_path):
    cohort = build_cohort(tmp_path / "outside")
    at = open_page(workspace, "slides", model=model_path)
    at.text_input(key="slides_folder").input(str(cohort["slides"])).run()
    assert any("outside the data roots" in e.value for e in at.error)


def test_a_finished_cohort_shows_its_table_metrics_and_a_slide_map_with_outlines(workspace, model_path):
    cohort = build_cohort(workspace / "cohort")
    at = choose(open_page(workspace, "slides", model=model_path), cohort)
    assert at.button(key="slides_start")
    status = run_job(
        model_path,
        cohort["slides"],
        key=key_of(model_path, cohort),
        labels=cohort["labels"],
        annotations=cohort["annotations"],
        options=SlideOptions(),
        aggregate="max",
    )  # what it starts
    assert status["state"] == "finished", status
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["slide"]) == ["lesion", "pyramid", "text", "tiny"]
    assert table["thumbnail"].str.startswith("data:image/png").sum() == 2  # the two scored slides
    assert "Slide AUC" in [m.label for m in at.metric]
    assert at.selectbox(key="slides_selected").options == ["lesion", "pyramid"]
    figures = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert len(figures) == 2  # the ROC and the slide's map
    assert '"name":"annotation"' in figures[1].replace(" ", "") and '"name":"model"' in figures[1].replace(
        " ", ""
    )
    assert {b.proto.label for b in at.get("download_button")} >= {
        "slides.csv",
        "summary.json",
        "lesion_outlines.geojson",
    }


def test_a_running_cohort_shows_progress_stops_and_is_found_again_after_a_reload(workspace, model_path):
    cohort = build_cohort(workspace / "cohort")
    at = choose(open_page(workspace, "slides", model=model_path), cohort)
    key = key_of(model_path, cohort)
    job_dir(key).mkdir(parents=True)
    write_status(job_dir(key), "running", pid=os.getpid(), phase="scoring slides", done=1, total=4,
                 last="lesion: done", tiles_per_s=12.0, eta_s=3.0, started=time.time())  # fmt: skip
    at.run()
    assert any("Slides 1/4" in (p.proto.text or "") for p in at.get("progress"))
    reloaded = reload_of(at, model_path)
    assert reloaded.text_input(key="slides_folder").value == str(cohort["slides"])
    assert any("Slides 1/4" in (p.proto.text or "") for p in reloaded.get("progress"))
    reloaded.button(key="slides_stop").click().run()
    assert (job_dir(key) / "stop.request").exists()


def test_uncertainty_per_tile_is_kept_in_the_url_keys_the_job_and_counts_uncertain_tiles(
    workspace, model_path
):
    cohort = build_cohort(workspace / "cohort")
    at = choose(open_page(workspace, "slides", model=model_path), cohort)
    at.checkbox(key="slides_uncertainty").check().run()
    assert at.query_params.get("slides_uncertainty") == "1"
    options = SlideOptions(uncertainty=True)
    key = job_key(model_path, cohort["slides"], labels=cohort["labels"], annotations=cohort["annotations"],
                  options=options)  # fmt: skip
    assert key != key_of(model_path, cohort)  # the 8-view run is another job than the plain one
    status = run_job(model_path, cohort["slides"], key=key, labels=cohort["labels"],
                     annotations=cohort["annotations"], options=options, aggregate="max")  # fmt: skip
    assert status["state"] == "finished", status
    reloaded = reload_of(at, model_path)
    assert reloaded.checkbox(key="slides_uncertainty").value is True
    table = reloaded.dataframe[0].value
    scored = table[table["status"].isin(["done", "cached"])]
    assert "n_uncertain_tumour" in table.columns and scored["n_uncertain_tumour"].ge(0).all()


def cards(at) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_slide_calls_have_their_own_threshold_with_slide_roc_presets_as_the_cli_gives(workspace, model_path):
    """At the patch threshold max-like slide scores call most negative slides positive, so slides get a
    slider of their own (kept in the URL) with presets from the slide ROC; the cards at it equal
    `core slides --slide-threshold`, and the patch threshold (the map's outline) does not move."""
    cohort = build_cohort(workspace / "cohort")
    at = choose(open_page(workspace, "slides", model=model_path), cohort)
    key = key_of(model_path, cohort)
    status = run_job(model_path, cohort["slides"], key=key, labels=cohort["labels"],
                     annotations=cohort["annotations"], options=SlideOptions(), aggregate=DEFAULT_AGGREGATE)  # fmt: skip
    assert status["state"] == "finished", status
    at.run()
    frame = pd.read_csv(output_dir(key) / "slides.csv")
    labels, scores = labelled_scores(frame.to_dict("records"))
    youden = slide_presets(labels, scores)["youden"]
    assert at.button(key="slides-preset-youden").proto.label == f"Youden's J ({youden:.3f})"

    at.button(key="slides-preset-youden").click().run()
    expected = slide_metrics(labels, scores, youden)
    assert at.session_state["slides_threshold"] == youden and at.query_params["slide_threshold"] == repr(
        youden
    )
    assert at.session_state["threshold"] == 0.5 and at.slider(key="threshold_slider").value == 0.5
    shown = cards(at)
    assert shown["Sensitivity"] == f"{expected['sensitivity']:.3f}"
    assert shown["Specificity"] == f"{expected['specificity']:.3f}"
    assert f'"name":"at {youden:.3f}"' in at.get("plotly_chart")[0].proto.spec

    cli = workspace / "cli"
    main(["slides", str(model_path), str(cohort["slides"]), "--out", str(cli), "--labels", str(cohort["labels"]),
          "--annotations", str(cohort["annotations"]), "--slide-threshold", repr(youden)])  # fmt: skip
    summary = json.loads((cli / "summary.json").read_text())
    assert summary["slide_threshold"] == youden and summary["threshold"] == 0.5
    assert f"{summary['sensitivity']:.3f}" == shown["Sensitivity"]
    assert f"{summary['specificity']:.3f}" == shown["Specificity"]

    at.slider(key="slides_threshold_slider").set_value(0.0).run()  # every slide called tumour
    assert (cards(at)["Sensitivity"], cards(at)["Specificity"]) == ("1.000", "0.000")
    assert any("every labelled slide is called tumour" in w.value for w in at.warning)
    assert at.session_state["threshold"] == 0.5
    reloaded = reload_of(at, model_path)
    assert reloaded.session_state["slides_threshold"] == 0.0
    assert reloaded.slider(key="slides_threshold_slider").value == 0.0
