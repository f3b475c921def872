"""core.evaluate.metrics: every metric agrees with scikit-learn, thresholds and mistakes behave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from core.evaluate import metrics as ev
from core.evaluate import predictions as pr
from core.evaluate.interpret import Interpretation


@pytest.fixture(scope="module")
def scored():
    """2,000 labels with overlapping scores, ties included (rounded to 3 decimals)."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 2000)
    probs = np.clip(0.35 * labels + 0.65 * rng.random(2000), 0, 1).round(3)
    return labels, probs


# A hand-made set small enough to count by eye.
HAND_LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
HAND_PROBS = np.array([0.1, 0.4, 0.5, 0.8, 0.2, 0.5, 0.6, 0.9, 0.95, 0.3])


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.65])
def test_every_metric_equals_scikit_learn(scored, threshold):
    labels, probs = scored
    predicted = (probs >= threshold).astype(int)
    got = ev.metrics_at(labels, probs, threshold)

    assert got["n"] == len(labels)
    assert got["threshold"] == threshold
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
    assert got["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted))
    assert got["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert got["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert got["f1"] == pytest.approx(skm.f1_score(labels, predicted))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(labels, probs))
    assert got["average_precision"] == pytest.approx(skm.average_precision_score(labels, probs))
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probs))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(labels, probs))
    assert got["confusion"] == skm.confusion_matrix(labels, predicted).tolist()
    assert got["undefined"] == {}


def test_log_loss_matches_scikit_learn_with_certain_predictions():
    labels = [0, 1, 1, 0]
    probs = [0.0, 1.0, 0.0, 0.2]  # one certain mistake: clipping decides the value
    assert ev.metrics_at(labels, probs)["log_loss"] == pytest.approx(skm.log_loss(labels, probs))


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        # [[tn, fp], [fn, tp]] counted by hand from HAND_LABELS / HAND_PROBS (tumour if >= t)
        (0.5, [[3, 2], [1, 4]]),  # normals 0.5, 0.8 flagged; tumour 0.2 missed
        (0.3, [[1, 4], [1, 4]]),  # normals 0.3 (>= counts), 0.4, 0.5, 0.8 flagged
        (0.95, [[5, 0], [4, 1]]),
        (0.0, [[0, 5], [0, 5]]),
        (1.0, [[5, 0], [5, 0]]),
    ],
)
def test_confusion_matches_a_hand_count(threshold, expected):
    assert ev.confusion_at(HAND_LABELS, HAND_PROBS, threshold).tolist() == expected


def test_ece_by_hand():
    # bins are (low, high]: (0, 0.1] holds 0.1, 0.1 with labels 0, 1 -> gap |0.1 - 0.5| = 0.4;
    # (0.8, 0.9] holds 0.9 (label 1) -> gap 0.1; (0.9, 1] holds 1.0 (label 1) -> gap 0
    got = ev.metrics_at([0, 1, 1, 1], [0.1, 0.1, 0.9, 1.0])["ece"]
    assert got == pytest.approx(2 / 4 * 0.4 + 1 / 4 * 0.1 + 1 / 4 * 0.0)
    curve = ev.reliability_curve([0, 1, 1, 1], [0.1, 0.1, 0.9, 1.0])
    assert curve.count.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_reliability_curve_counts_every_patch(scored):
    labels, probs = scored
    curve = ev.reliability_curve(labels, probs, bins=10)
    assert curve.count.sum() == len(labels)
    assert len(curve.bin_edges) == 11
    filled = curve.count > 0
    assert np.all((curve.mean_predicted[filled] >= 0) & (curve.mean_predicted[filled] <= 1))
    expected_x, expected_y = _sklearn_calibration(labels, probs)
    np.testing.assert_allclose(curve.observed_fraction[filled], expected_y)
    np.testing.assert_allclose(curve.mean_predicted[filled], expected_x)


def _sklearn_calibration(labels, probs):
    from sklearn.calibration import calibration_curve

    fraction, mean = calibration_curve(labels, probs, n_bins=10, strategy="uniform")
    return mean, fraction


def test_one_class_is_graceful():
    got = ev.metrics_at([1, 1, 1], [0.2, 0.7, 0.9])
    assert got["auc"] is None and "every label is tumour" in got["undefined"]["auc"]
    assert got["specificity"] is None
    assert got["sensitivity"] == pytest.approx(2 / 3)
    assert ev.roc_points([0, 0], [0.1, 0.2]).auc is None
    assert ev.bootstrap_ci([0, 0], [0.1, 0.2], "auc") is None
    presets = ev.threshold_presets([0, 0, 0], [0.1, 0.2, 0.3])
    assert presets["youden"] is None and presets["sensitivity≥0.95"] is None


@pytest.mark.parametrize(
    ("labels", "probs", "message"),
    [
        ([0, 1], [0.5], "differ in length"),
        ([], [], "empty"),
        ([0, 2], [0.1, 0.2], "must be 0 or 1"),
        ([0, np.nan], [0.1, 0.2], "missing"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_inputs_are_refused_with_a_precise_message(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        ev.metrics_at(labels, probs)


def test_curves_match_scikit_learn(scored):
    labels, probs = scored
    roc = ev.roc_points(labels, probs)
    fpr, tpr, thresholds = skm.roc_curve(labels, probs)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    np.testing.assert_allclose(roc.thresholds, thresholds)
    assert roc.auc == pytest.approx(skm.roc_auc_score(labels, probs))

    pr = ev.pr_points(labels, probs)
    assert len(pr.precision) == len(pr.recall) == len(pr.thresholds)
    precision, recall, _ = skm.precision_recall_curve(labels, probs)
    np.testing.assert_allclose(pr.precision, precision)
    np.testing.assert_allclose(pr.recall, recall)
    # each finite threshold reproduces its point
    i = len(pr.thresholds) // 2
    predicted = probs >= pr.thresholds[i]
    assert skm.recall_score(labels, predicted) == pytest.approx(pr.recall[i])


def test_youden_maximises_sensitivity_plus_specificity(scored):
    labels, probs = scored
    youden = ev.threshold_presets(labels, probs)["youden"]

    def j(t):
        m = ev.metrics_at(labels, probs, t)
        return m["sensitivity"] + m["specificity"] - 1

    best = max(j(t) for t in np.unique(probs))
    assert j(youden) == pytest.approx(best)


@pytest.mark.parametrize("target", [0.95, 0.8, 0.5])
def test_sensitivity_preset_is_the_highest_threshold_reaching_the_target(scored, target):
    labels, probs = scored
    presets = ev.threshold_presets(labels, probs, target_sensitivity=target)
    t = presets[f"sensitivity≥{target:g}"]
    assert ev.metrics_at(labels, probs, t)["sensitivity"] >= target
    higher = np.unique(probs)[np.unique(probs) > t]
    assert ev.metrics_at(labels, probs, higher[0])["sensitivity"] < target
    assert presets["0.5"] == 0.5


def test_sensitivity_preset_on_the_hand_set():
    # 5 tumours; 0.95 of 5 needs all 5, so the lowest tumour probability (0.2) is the answer
    assert ev.highest_threshold_for_sensitivity(HAND_LABELS, HAND_PROBS, 0.95) == 0.2
    # 0.6 of 5 = 3 tumours: the 3rd highest tumour probability
    assert ev.highest_threshold_for_sensitivity(HAND_LABELS, HAND_PROBS, 0.6) == 0.6


@pytest.mark.parametrize("metric", ["auc", "accuracy"])
def test_bootstrap_interval_contains_the_point_estimate(scored, metric):
    labels, probs = scored
    low, high = ev.bootstrap_ci(labels, probs, metric, 0.5, n_boot=500, seed=1)
    point = ev.metrics_at(labels, probs, 0.5)[metric]
    assert low < point < high
    assert high - low < 0.1  # 2,000 patches pin these to a few points
    assert ev.bootstrap_ci(labels, probs, metric, n_boot=500, seed=1) == (low, high)


def test_bootstrap_auc_agrees_with_a_slow_loop():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    probs = np.clip(0.3 * labels + 0.7 * rng.random(60), 0, 1).round(1)  # many ties
    fast = ev.bootstrap_ci(labels, probs, "auc", n_boot=200, seed=5)
    replay = np.random.default_rng(5).integers(0, 60, size=(200, 60))
    slow = [skm.roc_auc_score(labels[idx], probs[idx]) for idx in replay if 0 < labels[idx].sum() < len(idx)]
    assert fast == pytest.approx(tuple(np.percentile(slow, [2.5, 97.5])))


def test_bootstrap_rejects_unknown_metric(scored):
    with pytest.raises(ValueError, match="metric must be one of"):
        ev.bootstrap_ci(*scored, metric="f1")


def _predictions():
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(len(HAND_LABELS))] + ["unlabelled"],
            "label": list(HAND_LABELS.astype(float)) + [np.nan],
            "prob": list(HAND_PROBS) + [0.99],
        }
    )


def test_mistakes_most_confident_first():
    wrong = Interpretation(_predictions()).mistakes(0.5)
    # false positives: normals at 0.8 (p3), 0.5 (p2); false negative: tumour at 0.2 (p4)
    assert wrong["id"].tolist() == ["p3", "p4", "p2"]
    assert wrong["kind"].tolist() == [
        "false positive",
        "false negative",
        "false positive",
    ]
    np.testing.assert_allclose(wrong["confidence"], [0.8, 0.8, 0.5])
    assert list(wrong.columns) == ["id", "label", "prob", "kind", "confidence"]


def test_mistakes_filters():
    predictions = _predictions()
    fps = Interpretation(predictions).mistakes(0.5, kind="false positive")
    assert set(fps["kind"]) == {"false positive"} and len(fps) == 2
    fns = Interpretation(predictions).mistakes(0.5, kind="false negative")
    assert fns["id"].tolist() == ["p4"]
    assert Interpretation(predictions).mistakes(0.5, min_prob=0.6)["id"].tolist() == ["p3"]
    assert Interpretation(predictions).mistakes(0.5, max_prob=0.3)["id"].tolist() == ["p4"]
    with pytest.raises(ValueError, match="kind must be one of"):
        Interpretation(predictions).mistakes(0.5, kind="wrong")


def test_predictions_round_trip_atomically(tmp_path):
    predictions = _predictions()
    path = pr.write_predictions(predictions, tmp_path / "preds.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # no temp file left behind
    back = pr.read_predictions(path)
    assert back["id"].tolist() == predictions["id"].tolist()
    np.testing.assert_array_equal(back["prob"], predictions["prob"])
    assert back["label"].isna().tolist() == predictions["label"].isna().tolist()
    labels, _ = pr.labelled_arrays(back)
    assert len(labels) == len(HAND_LABELS)


def test_read_predictions_keeps_hex_ids_as_text(tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text("id,label,prob\n0012,1,0.5\n1e10,0,0.25\n")
    back = pr.read_predictions(path)
    assert back["id"].tolist() == ["0012", "1e10"]


def test_submission_has_kaggle_columns(tmp_path):
    path = pr.write_submission(_predictions(), tmp_path / "submission.csv")
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["id", "label"]
    np.testing.assert_allclose(frame["label"], _predictions()["prob"])
