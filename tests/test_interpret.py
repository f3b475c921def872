"""core.evaluate.interpret: the Interpretation and the pure helpers behind the Evaluate, Predict and
Mistakes pages, on real patches."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.evaluate.interpret import CELLS, Interpretation, mistakes_csv
from core.evaluate.metrics import (
    bootstrap_ci,
    confusion_at,
    metrics_at,
    pr_points,
    reliability_curve,
    roc_points,
    threshold_presets,
)
from core.evaluate.sources import PatchLookup, training_overlap_note, validation_info
from core.evaluate.uploads import decode_uploads, upload_results
from core.formatting import format_interval, format_metric, page_bounds
from core.settings import SAMPLE_DATASET
from ui.evaluate_panels import clicked_cell

PREDICTIONS = pd.DataFrame(
    {
        "id": list("abcdefgh"),
        "label": [0, 0, 0, 0, 1, 1, 1, np.nan],
        "prob": [0.1, 0.6, 0.95, 0.3, 0.2, 0.7, 0.99, 0.5],
    }
)


def test_confusion_cells_partition_the_labelled_rows_and_sort_by_confidence():
    sizes = {cell: len(Interpretation(PREDICTIONS).cell(cell, 0.5)) for cell in CELLS}
    known = PREDICTIONS.dropna()
    (tn, fp), (fn, tp) = confusion_at(known["label"], known["prob"], 0.5)
    assert sizes == {"TN": tn, "FP": fp, "FN": fn, "TP": tp}
    assert Interpretation(PREDICTIONS).cell("FP", 0.5)["id"].tolist() == ["c", "b"]  # 0.95 before 0.6
    assert Interpretation(PREDICTIONS).cell("TN", 0.5)["id"].tolist() == ["a", "d"]  # 0.1 before 0.3
    with pytest.raises(ValueError, match="cell"):
        Interpretation(PREDICTIONS).cell("XX", 0.5)


def test_page_bounds_clamp():
    assert page_bounds(50, 1, 24) == (0, 24, 3)
    assert page_bounds(50, 3, 24) == (48, 50, 3)
    assert page_bounds(50, 9, 24) == (48, 50, 3)
    assert page_bounds(0, 1, 24) == (0, 0, 1)


def test_validation_info_and_training_overlap(tmp_path):
    split = validation_info({"data": ["/d/train"], "val_data": None, "val_fraction": 0.2})
    assert (
        not split.separate
        and split.patch_paths == ("/d/train",)
        and "random patch-level split (20 %)" in split.note
    )
    separate = validation_info({"data": ["/d/train"], "val_data": "/d/valid"})
    assert separate.separate and separate.patch_paths == ("/d/valid",) and "separate dataset" in separate.note
    assert "training data" in training_overlap_note({"data": [str(tmp_path)], "val_data": None}, tmp_path)
    assert training_overlap_note({"data": ["/elsewhere"]}, tmp_path) is None
    assert training_overlap_note(None, tmp_path) is None


def test_patch_lookup_reads_real_patches_by_id_and_names_what_it_cannot(tmp_path):
    lookup = PatchLookup([str(SAMPLE_DATASET), str(tmp_path / "gone")])
    assert len(lookup) == 1000 and len(lookup.problems) == 1
    first = lookup.datasets[0].ids[0]
    patches, found, missing = lookup.read([first, "no-such-id"])
    assert patches.shape == (1, 96, 96, 3) and patches.dtype == np.uint8
    assert found == [first] and list(missing) == ["no-such-id"]
    assert lookup.source_of(first).endswith(f"{first}.tif")


def test_decode_uploads_keeps_good_files_and_names_bad_ones():
    tif = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[0]
    batch = decode_uploads([(tif.name, tif.read_bytes()), ("bad.png", b"not an image")])
    assert batch.names == [tif.name] and batch.patches.shape == (1, 96, 96, 3)
    assert batch.errors[0] == ("bad.png", "not a readable image (TIFF, PNG or JPEG expected).")
    table = upload_results(batch, np.array([0.7]), 0.5)
    assert table["call"].tolist() == ["tumour", ""] and np.isnan(table["probability"].iloc[1])


def test_formatting():
    assert format_metric(None) == "—" and format_metric(0.12345) == "0.123"
    assert (
        format_interval(None) == "95 % CI undefined" and format_interval((0.1, 0.2)) == "95 % CI 0.100–0.200"
    )


def test_mistakes_csv_writes_labels_as_integers():
    from core.evaluate.interpret import Interpretation

    wrong = Interpretation(PREDICTIONS).mistakes(0.5)
    text = mistakes_csv(wrong, ["x"] * len(wrong)).decode()
    frame = pd.read_csv(io.StringIO(text), dtype=str)
    assert set(frame["label"]) == {"0", "1"}  # not 0.0 / 1.0
    assert list(frame.columns) == ["id", "label", "prob", "kind", "confidence", "source"]


def test_a_click_on_a_matrix_marker_names_its_cell():
    assert [clicked_cell([{"point_index": k}]) for k in range(4)] == list(CELLS)
    assert clicked_cell([]) is None and clicked_cell([{"point_index": 7}]) is None


def test_an_interpretation_from_predictions_gives_the_evaluate_page_every_view():
    """Issue 21 item 3: metrics, curves, presets and intervals come from the one object, equal to the
    metric functions on its labelled rows; `quality` keeps only the rows the gate passed."""
    flagged = PREDICTIONS.assign(quality=["ok", "ok", "blurred", "ok", "ok", "not_he", "ok", "ok"])
    interpretation = Interpretation.from_predictions(flagged)
    known = PREDICTIONS.dropna()
    labels, probs = known["label"].to_numpy(), known["prob"].to_numpy()
    assert len(interpretation) == 7 and interpretation.n_unlabelled == 1 and interpretation.n_positive == 3
    assert interpretation.metrics(0.4)["confusion"] == metrics_at(labels, probs, 0.4)["confusion"]
    assert interpretation.metrics(0.4)["f1"] == metrics_at(labels, probs, 0.4)["f1"]
    found = interpretation.curves()
    assert found.roc.auc == roc_points(labels, probs).auc
    assert found.pr.average_precision == pr_points(labels, probs).average_precision
    assert found.reliability.ece == reliability_curve(labels, probs).ece
    assert interpretation.curves() is found  # computed once
    assert interpretation.presets() == threshold_presets(labels, probs)
    assert interpretation.interval("accuracy", 0.4, n_boot=200) == bootstrap_ci(
        labels, probs, "accuracy", 0.4, n_boot=200, seed=0
    )
    assert interpretation.interval("auc", 0.9) == interpretation.interval("auc", 0.1)  # threshold-free

    unflagged = Interpretation.from_predictions(flagged, quality="ok")
    assert len(unflagged) == 5 and set(unflagged.labelled["id"]) == {"a", "b", "d", "e", "g"}
    with pytest.raises(InputError, match="No predictions"):
        Interpretation.from_predictions(PREDICTIONS.assign(label=np.nan))
    with pytest.raises(InputError, match="quality"):
        Interpretation.from_predictions(flagged, quality="smudged")
