"""A cohort of slides (core.slides, `python -m core slides`): real slides built from the bundled
patches (tests/slides_cohort.py), a real tiny model, labels, QuPath annotations, broken slides, cached
and interrupted re-runs, and the same cohort on an in-process 2-worker Dask cluster."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from slides_cohort import BROKEN, GOOD, build_cohort

from core.cli import main
from core.errors import CohortStopped
from core.settings import PROJECT_DIR
from core.slides.aggregate import DEFAULT_AGGREGATE
from core.slides.cohort import run_cohort
from core.slides.task import RECORD_FILE, SlideOptions

REQUIRED = ["slide", "score", "status", "message", "n_tiles", "n_scored", "tumour_area_mm2", "label"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return build_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(10)[1]


@pytest.fixture(scope="module")
def first_run(cohort, model_path, tmp_path_factory):
    """The cohort scored once through the CLI: (exit code, output folder)."""
    out = tmp_path_factory.mktemp("first") / "out"
    code = main(["slides", str(model_path), str(cohort["slides"]), "--out", str(out), "--labels",
                 str(cohort["labels"]), "--annotations", str(cohort["annotations"])])  # fmt: skip
    return code, out


def table(out) -> pd.DataFrame:
    return pd.read_csv(out / "slides.csv").set_index("slide")


def run_again(cohort, model_path, out, **options):
    return run_cohort(model_path, [cohort["slides"]], out, labels_path=cohort["labels"],
                      annotations_dir=cohort["annotations"], options=SlideOptions(**options))  # fmt: skip


def test_every_slide_gets_a_row_and_broken_ones_fail_with_their_reason_and_exit_1(first_run):
    code, out = first_run
    frame = table(out)
    assert code == 1
    assert list(pd.read_csv(out / "slides.csv").columns[: len(REQUIRED)]) == REQUIRED
    assert sorted(frame.index) == sorted(GOOD + BROKEN)
    assert set(frame.loc[list(GOOD), "status"]) == {"done"}
    assert set(frame.loc[list(BROKEN), "status"]) == {"failed"}
    assert "text.svs" in frame.loc["text", "message"]
    assert "smaller than one 96x96 patch" in frame.loc["tiny", "message"]
    assert frame.loc["lesion", "label"] == 1 and frame.loc["pyramid", "label"] == 0
    assert (frame.loc[list(GOOD), "n_scored"] == 24).all()
    for slide in GOOD:  # each slide's folder holds core heatmap's outputs and the model's outline
        assert (out / slide / "summary.json").is_file() and (out / slide / "outlines.geojson").is_file()


def test_the_summary_has_the_slide_level_and_tile_level_metrics(first_run):
    _, out = first_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_slides"] == 4 and summary["n_failed"] == 2 and summary["aggregate"] == DEFAULT_AGGREGATE
    assert summary["n"] == 2  # the failed slides are left out of the slide-level metrics
    for key in ("auc", "auc_ci", "accuracy", "sensitivity", "specificity", "threshold", "tile_auc", "dice"):
        assert key in summary
    assert summary["tile_n"] == 48  # 24 scored tiles on each annotated slide
    assert summary["tile_positive"] == 12  # the lesion's tumour patches; the pyramid's Stroma labels none


def test_the_slide_threshold_is_its_own_and_moves_only_the_slide_calls(first_run, cohort, model_path, tmp_path,
                                                                        capsys):  # fmt: skip
    """--slide-threshold calls the slides; --threshold (tiles, outlines, proportion) stays where it was. The
    summary lists the slide ROC's presets, and the printed line says the calls at the slide threshold."""
    first = json.loads((first_run[1] / "summary.json").read_text())
    assert first["threshold"] == 0.5 and first["slide_threshold"] == 0.5
    assert set(first["slide_threshold_presets"]) == {"0.5", "youden", "sensitivity≥0.95"}
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    capsys.readouterr()
    main(["slides", str(model_path), str(cohort["slides"]), "--out", str(out), "--labels", str(cohort["labels"]),
          "--annotations", str(cohort["annotations"]), "--slide-threshold", "0"])  # fmt: skip
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["sensitivity"], summary["specificity"], summary["slide_threshold"]) == (1.0, 0.0, 0.0)
    assert "at slide threshold 0.000: sensitivity 1.000, specificity 0.000" in printed
    assert set(table(out).loc[list(GOOD), "status"]) == {"cached"}  # no tile was scored again
    tiles = ("threshold", "tile_auc", "tile_sensitivity", "tile_specificity", "dice", "auc")
    assert {k: summary[k] for k in tiles} == {k: first[k] for k in tiles}
    with pytest.raises(SystemExit) as refused:  # argparse: a threshold outside [0, 1] is refused in one line
        main(
            ["slides", str(model_path), str(cohort["slides"]), "--out", str(out), "--slide-threshold", "1.5"]
        )
    assert refused.value.code == 2 and "must lie in [0, 1]" in capsys.readouterr().err


def test_tumour_annotations_label_exactly_the_tiles_whose_centre_box_they_overlap(first_run, cohort):
    _, out = first_run
    labels = np.load(out / "lesion" / "tile_labels.npy")
    np.testing.assert_array_equal(labels, cohort["tile_labels"])
    assert not np.load(out / "pyramid" / "tile_labels.npy").any()


def test_a_second_run_recomputes_nothing_and_gives_the_same_table(first_run, cohort, model_path, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    before = (out / "lesion" / "probabilities.npy").stat().st_mtime_ns
    run_again(cohort, model_path, out)
    frame = table(out)
    assert set(frame.loc[list(GOOD), "status"]) == {"cached"}
    assert (out / "lesion" / "probabilities.npy").stat().st_mtime_ns == before
    pd.testing.assert_series_equal(frame["score"], table(first_run[1])["score"])


def test_an_interrupted_run_is_completed_by_running_it_again(first_run, cohort, model_path, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    (out / "pyramid" / RECORD_FILE).unlink()  # killed after the heatmap, before the slide's record
    (out / "pyramid" / "probabilities.npy").write_bytes(b"half")
    (out / "summary.json").unlink()  # and before the cohort's summary
    run_again(cohort, model_path, out)
    frame = table(out)
    assert frame.loc["pyramid", "status"] == "done" and frame.loc["lesion", "status"] == "cached"
    assert (out / "summary.json").is_file()
    pd.testing.assert_series_equal(frame["score"], table(first_run[1])["score"])


def test_a_changed_option_recomputes_every_slide(first_run, cohort, model_path, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)
    run_again(cohort, model_path, out, threshold=0.9)
    assert set(table(out).loc[list(GOOD), "status"]) == {"done"}


def test_a_region_class_limits_scoring_to_its_area(cohort, model_path, tmp_path):
    run_cohort(model_path, [cohort["slides"] / "pyramid.tif"], tmp_path / "out",
               annotations_dir=cohort["annotations"], options=SlideOptions(region_class="Stroma"))  # fmt: skip
    assert table(tmp_path / "out").loc["pyramid", "n_scored"] == 1  # the one Stroma square


def test_bad_geojson_fails_its_slide_in_one_line(cohort, model_path, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "lesion.geojson").write_text('{"type": "FeatureCollection", "features": [')
    code = main(["slides", str(model_path), str(cohort["slides"] / "lesion.png"), "--out", str(tmp_path / "out"),
                 "--annotations", str(notes)])  # fmt: skip
    row = table(tmp_path / "out").loc["lesion"]
    assert code == 1 and row["status"] == "failed"
    assert row["message"].startswith("lesion.geojson: not valid JSON") and "\n" not in row["message"]


def test_on_a_two_worker_dask_cluster_the_table_is_the_local_one(first_run, cohort, model_path, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = main(["slides", str(model_path), str(cohort["slides"]), "--out", str(tmp_path / "out"),
                     "--labels", str(cohort["labels"]), "--annotations", str(cohort["annotations"]),
                     "--scheduler", cluster.scheduler_address])  # fmt: skip
        assert "score_slide" in cluster.scheduler.task_prefixes  # the slides ran on the cluster's workers
    assert code == 1
    local, remote = table(first_run[1]), table(tmp_path / "out")
    columns = ["score", "status", "n_tiles", "n_scored", "tumour_area_mm2", "label", "tile_auc", "dice"]
    pd.testing.assert_frame_equal(remote[columns], local[columns])


def test_relative_paths_reach_workers_that_run_in_another_folder(cohort, model_path, tmp_path, monkeypatch,
                                                                 engine_cluster):  # fmt: skip
    """The shared cluster's worker processes run in the folder the suite started in; the command runs in
    a folder of its own and names the model, the slides and the output relative to it."""
    import os

    monkeypatch.chdir(tmp_path)
    from core.jobs import engine

    assert str(tmp_path) not in set(engine.client().run(os.getcwd).values())  # the workers' folders
    good = cohort["slides"] / "lesion.png"
    code = main(["slides", os.path.relpath(model_path), os.path.relpath(good), "--out", "out",
                 "--scheduler", engine_cluster.scheduler_address])  # fmt: skip
    row = table(tmp_path / "out").loc["lesion"]
    assert code == 0 and row["status"] == "done", row["message"]
    assert (tmp_path / "out" / "lesion").is_dir() and not (PROJECT_DIR / "out").exists()


def test_a_stop_request_ends_the_run_after_the_slide_being_scored_without_a_summary(
    cohort, model_path, tmp_path
):
    reported = []
    with pytest.raises(CohortStopped):
        run_cohort(
            model_path,
            [cohort["slides"]],
            tmp_path / "out",
            progress=reported.append,
            should_stop=lambda: True,
        )
    assert len(reported) == 1  # of 4 slides: no other was reported once the stop was seen
    assert not (tmp_path / "out" / "summary.json").exists() and not (tmp_path / "out" / "slides.csv").exists()
