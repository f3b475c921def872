"""core.evaluate.metrics with the input-quality gate's `quality` column: the filter, the metrics with and
without flagged patches, mistakes by quality, and the prediction files with and without the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.quality import OK
from core.evaluate import metrics as ev
from core.evaluate import predictions as pr
from core.evaluate.interpret import Interpretation


@pytest.fixture()
def predictions() -> pd.DataFrame:
    """200 labelled patches, 30 of them flagged (some with two flags), plus 5 unlabelled ones; the
    flagged ones are scored at random so they drag the metrics down."""
    rng = np.random.default_rng(3)
    n = 205
    labels = rng.integers(0, 2, n).astype(float)
    labels[-5:] = np.nan
    probs = np.clip(0.5 * np.nan_to_num(labels) + 0.5 * rng.random(n), 0, 1)
    quality = np.full(n, OK, dtype=object)
    quality[:12] = "not_he"
    quality[12:20] = "background"
    quality[20:26] = "blurred"
    quality[26:30] = "not_he;blurred"
    probs[:30] = rng.random(30)
    ids = [f"p{i:03d}" for i in range(n)]
    return pd.DataFrame({"id": ids, "label": labels, "prob": probs, "quality": quality})


def test_the_quality_filter_keeps_all_ok_or_one_flag(predictions):
    assert pr.with_quality(predictions, "all").equals(predictions)
    assert (pr.with_quality(predictions, "ok")["quality"] == OK).all()
    assert len(pr.with_quality(predictions, "ok")) == 175
    assert pr.with_quality(predictions, "not_he")["id"].tolist() == [
        f"p{i:03d}" for i in (*range(12), *range(26, 30))
    ]
    assert len(pr.with_quality(predictions, "blurred")) == 10  # alone or with not_he
    assert pr.flagged_mask(predictions).sum() == 30
    with pytest.raises(ValueError, match="quality must be"):
        pr.with_quality(predictions, "smudged")


def test_without_a_quality_column_nothing_is_flagged(predictions):
    plain = predictions.drop(columns="quality")
    assert not pr.has_quality(plain) and not pr.flagged_mask(plain).any()
    assert pr.with_quality(plain, "ok").equals(plain) and pr.with_quality(plain, "not_he").empty
    table = pr.metrics_by_quality(plain, 0.5)
    assert table.loc[pr.WITHOUT_FLAGGED, "n_flagged_left_out"] == 0
    assert table.loc[pr.ALL_PATCHES, "auc"] == table.loc[pr.WITHOUT_FLAGGED, "auc"]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_metrics_with_and_without_flagged_equal_metrics_at_on_those_rows(predictions, threshold):
    table = pr.metrics_by_quality(predictions, threshold)
    assert list(table.index) == [pr.ALL_PATCHES, pr.WITHOUT_FLAGGED]
    everything = ev.metrics_at(*pr.labelled_arrays(predictions), threshold)
    ok_rows = predictions[predictions["quality"] == OK]
    unflagged = ev.metrics_at(*pr.labelled_arrays(ok_rows), threshold)
    for name, expected in ((pr.ALL_PATCHES, everything), (pr.WITHOUT_FLAGGED, unflagged)):
        assert table.loc[name, "n"] == expected["n"]
        for metric in pr.HEADLINE_METRICS:
            assert table.loc[name, metric] == pytest.approx(expected[metric])
    assert table.loc[pr.ALL_PATCHES, "n"] == 200 and table.loc[pr.WITHOUT_FLAGGED, "n"] == 170
    assert table.loc[pr.WITHOUT_FLAGGED, "n_flagged_left_out"] == 30
    assert table.loc[pr.WITHOUT_FLAGGED, "auc"] > table.loc[pr.ALL_PATCHES, "auc"]


def test_every_patch_flagged_leaves_an_empty_row(predictions):
    flagged = predictions.assign(quality="background")
    row = pr.metrics_by_quality(flagged, 0.5).loc[pr.WITHOUT_FLAGGED]
    assert row["n"] == 0 and np.isnan(row["auc"]) and np.isnan(row["accuracy"])


def test_mistakes_combine_the_quality_filter_with_kind_and_range(predictions):
    every = Interpretation(predictions).mistakes(0.5)
    assert "quality" in every.columns
    flagged = Interpretation(predictions).mistakes(0.5, quality="not_he", kind="false positive", min_prob=0.6)
    expected = every[
        every["quality"].str.contains("not_he") & (every["kind"] == "false positive") & (every["prob"] >= 0.6)
    ]
    assert len(flagged) > 0
    assert flagged["id"].tolist() == expected["id"].tolist()
    assert (Interpretation(predictions).mistakes(0.5, quality="ok")["quality"] == OK).all()


def test_predictions_round_trip_with_and_without_quality(predictions, tmp_path):
    with_column = pr.read_predictions(pr.write_predictions(predictions, tmp_path / "q.csv"))
    assert list(with_column.columns) == ["id", "label", "prob", "quality"]
    assert with_column["quality"].tolist() == predictions["quality"].tolist()
    np.testing.assert_array_equal(with_column["prob"], predictions["prob"])

    plain = predictions.drop(columns="quality")
    without = pr.read_predictions(pr.write_predictions(plain, tmp_path / "plain.csv"))
    assert list(without.columns) == list(pr.PREDICTION_COLUMNS)
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == "id,label,prob"


def test_an_old_file_and_a_runs_val_predictions_read_without_quality(tmp_path):
    old = tmp_path / "val_predictions.csv"
    old.write_text("id,label,prob\n00a1,1,0.8\n00b2,0,0.1\n")
    frame = pr.read_predictions(old)
    assert list(frame.columns) == list(pr.PREDICTION_COLUMNS) and not pr.has_quality(frame)
    assert frame["id"].tolist() == ["00a1", "00b2"]


def test_the_mistakes_csv_carries_the_quality_column(predictions):
    import io

    from core.evaluate.interpret import mistakes_csv

    wrong = Interpretation(predictions).mistakes(0.5, quality="not_he")
    export = pd.read_csv(io.BytesIO(mistakes_csv(wrong, ["somewhere"] * len(wrong))))
    assert export["quality"].tolist() == wrong["quality"].tolist()
    assert all("not_he" in q for q in export["quality"])
