"""Model comparison (issue 12, item 4): DeLong's test of two correlated AUCs, the exact McNemar test,
the disagreements, and `python -m core compare` on two real tiny models and real patches.

DeLong is checked three independent ways: its AUCs against scikit-learn, its covariance against the
O(m x n) definition, and its standard error, interval and p-value against a seeded paired bootstrap of
the AUC difference. McNemar is checked against scipy's binomial test.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from page_helpers import copy_kaggle_subset
from scipy import stats
from sklearn.metrics import roc_auc_score

from core.diagnose.compare import (
    COMPARISON_KEYS,
    compare_predictions,
    delong_test,
    disagreements,
    mcnemar_exact,
    pair_predictions,
    paired_predictions,
    prediction_files,
)
from core.errors import ComparisonError, PatchLensError

EXPECTED_KEYS = (
    "n auc_a auc_b auc_diff auc_diff_ci delong_p accuracy_a accuracy_b mcnemar_p n_disagree".split()
)  # the contract
BOOTSTRAP_RESAMPLES = 2000
PER_CLASS = 16
pytestmark = pytest.mark.usefixtures("workspace")  # prediction caches go to a throwaway workspace


def correlated_scores(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two models' scores on the same patches, binormal and correlated the way two CNNs on the same
    patches are (a shared per-patch difficulty), rounded to 3 decimals so ties occur. A is a little
    better than B."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    difficulty = rng.normal(size=n)
    logit_a = 1.0 * labels + 0.8 * difficulty + 0.7 * rng.normal(size=n)
    logit_b = 0.85 * labels + 0.8 * difficulty + 0.7 * rng.normal(size=n)
    to_prob = lambda logit: np.round(1 / (1 + np.exp(-logit)), 3)  # noqa: E731
    return labels, to_prob(logit_a), to_prob(logit_b)


def pairwise_wins(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """psi(x_i, y_j) for every tumour i and normal j: 1 if the tumour scores higher, 1/2 on a tie."""
    x, y = probs[labels == 1][:, None], probs[labels == 0][None, :]
    return (x > y) + 0.5 * (x == y)


# --------------------------------------------------------------------------- DeLong


def test_delong_aucs_equal_sklearn_with_ties():
    labels, probs_a, probs_b = correlated_scores(seed=1)
    assert len(np.unique(probs_a)) < len(probs_a)  # ties are exercised
    result = delong_test(labels, probs_a, probs_b)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, probs_a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(labels, probs_b), abs=1e-12)
    assert result.diff == pytest.approx(result.auc_a - result.auc_b, abs=1e-15)


def test_delong_variance_equals_the_m_by_n_definition():
    """DeLong (1988) from its definition: structural components V10, V01 by all m x n comparisons."""
    labels, probs_a, probs_b = correlated_scores(seed=2, n=300)
    m, n = int(labels.sum()), int((labels == 0).sum())
    psi_a, psi_b = pairwise_wins(labels, probs_a), pairwise_wins(labels, probs_b)
    v10 = np.vstack([psi_a.mean(axis=1), psi_b.mean(axis=1)])
    v01 = np.vstack([psi_a.mean(axis=0), psi_b.mean(axis=0)])
    s = np.cov(v10) / m + np.cov(v01) / n
    se = math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    diff = psi_a.mean() - psi_b.mean()

    result = delong_test(labels, probs_a, probs_b)
    assert result.se == pytest.approx(se, rel=1e-9)
    assert result.p == pytest.approx(2 * stats.norm.sf(abs(diff) / se), rel=1e-9)
    assert result.ci == pytest.approx((diff - 1.959964 * se, diff + 1.959964 * se), abs=1e-6)


def test_delong_agrees_with_a_paired_bootstrap_of_the_auc_difference():
    """2,000 seeded paired resamples of the patches (both models' AUCs on the same resample)."""
    labels, probs_a, probs_b = correlated_scores(seed=12)
    result = delong_test(labels, probs_a, probs_b)

    rng = np.random.default_rng(0)
    counts = np.stack([np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
                       for _ in range(BOOTSTRAP_RESAMPLES)]).astype(float)  # fmt: skip
    w_pos, w_neg = counts[:, labels == 1], counts[:, labels == 0]

    def resampled_auc(wins: np.ndarray) -> np.ndarray:
        return np.einsum("bi,bi->b", w_pos @ wins, w_neg) / (w_pos.sum(axis=1) * w_neg.sum(axis=1))

    diffs = resampled_auc(pairwise_wins(labels, probs_a)) - resampled_auc(pairwise_wins(labels, probs_b))
    bootstrap_se = diffs.std(ddof=1)
    assert 0.9 < bootstrap_se / result.se < 1.1
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert result.ci[0] == pytest.approx(low, abs=0.005)
    assert result.ci[1] == pytest.approx(high, abs=0.005)
    bootstrap_p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    assert 0.05 < result.p < 0.9  # a difference the test is unsure of: the p-values mean something
    assert result.p == pytest.approx(bootstrap_p, abs=0.05)


def test_delong_on_a_hand_checked_example():
    """Tumour scores A (0.9, 0.6) and B (0.8, 0.7); normal scores A (0.7, 0.2) and B (0.3, 0.1).
    A wins 3 of its 4 pairs (0.6 < 0.7): AUC 0.75; B wins all 4: AUC 1. A's components: per tumour
    patch V10 = (1, 0.5), per normal patch V01 = (0.5, 1), each of variance 0.125; B's are constant.
    Var(diff) = 0.125 / 2 + 0.125 / 2 = 0.125, so z = -0.25 / 0.35355 = -0.7071, p = 0.4795."""
    result = delong_test([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.2], [0.8, 0.7, 0.3, 0.1])
    assert (result.auc_a, result.auc_b, result.diff) == (0.75, 1.0, -0.25)
    assert result.se == pytest.approx(math.sqrt(0.125))
    assert result.p == pytest.approx(0.4795, abs=1e-4)
    assert result.ci == pytest.approx((-0.25 - 1.96 * 0.35355, -0.25 + 1.96 * 0.35355), abs=1e-3)


def test_identical_models_are_not_different():
    labels, probs, _ = correlated_scores(seed=3, n=100)
    result = delong_test(labels, probs, probs)
    assert result.diff == 0.0 and result.p == 1.0 and result.ci == (0.0, 0.0)


# --------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize(
    ("b", "c", "same"), [(0, 0, 50), (3, 0, 10), (7, 2, 40), (5, 5, 1), (40, 25, 300), (1, 12, 0)]
)
def test_mcnemar_equals_scipys_binomial_test(b, c, same):
    correct_a = [True] * b + [False] * c + [True] * same + [False] * 4
    correct_b = [False] * b + [True] * c + [True] * same + [False] * 4
    expected = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert mcnemar_exact(correct_a, correct_b) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(correct_b, correct_a) == pytest.approx(expected, rel=1e-12)  # symmetric


# --------------------------------------------------------------------------- the comparison


def test_compare_predictions_has_exactly_the_keys_and_is_json_safe():
    labels, probs_a, probs_b = correlated_scores(seed=4, n=200)
    result = compare_predictions(labels, probs_a, probs_b, 0.4)
    assert list(result) == EXPECTED_KEYS == list(COMPARISON_KEYS)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert isinstance(result["auc_diff_ci"], list) and len(result["auc_diff_ci"]) == 2
    correct_a = (probs_a >= 0.4) == (labels == 1)
    correct_b = (probs_b >= 0.4) == (labels == 1)
    assert result["accuracy_a"] == correct_a.mean() and result["accuracy_b"] == correct_b.mean()
    b, c = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    assert result["n_disagree"] == b + c == int(((probs_a >= 0.4) != (probs_b >= 0.4)).sum())
    assert result["mcnemar_p"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)
    assert result["auc_a"] == pytest.approx(roc_auc_score(labels, probs_a))


def test_disagreements_split_both_ways_widest_gap_first():
    paired = pd.DataFrame(
        {
            "id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "label": [1, 1, 0, 0, 1, 0],
            "prob_a": [0.9, 0.6, 0.7, 0.2, 0.4, 0.1],
            "prob_b": [0.3, 0.45, 0.2, 0.9, 0.8, 0.3],
        }
    )
    groups = disagreements(paired, 0.5)
    # p1 (tumour: A 0.9 right, B 0.3 wrong), p2 (A right, gap 0.15), p4 (normal: A 0.2 right, B 0.9 wrong)
    assert groups.a_right["id"].tolist() == ["p4", "p1", "p2"]
    # p3 (normal: A 0.7 wrong, B 0.2 right), p5 (tumour: A 0.4 wrong, B 0.8 right)
    assert groups.b_right["id"].tolist() == ["p3", "p5"]
    assert compare_predictions(paired["label"], paired["prob_a"], paired["prob_b"], 0.5)["n_disagree"] == 5


def test_pairing_keeps_the_labelled_patches_both_models_scored():
    frame_a = pd.DataFrame(
        {"id": ["x", "y", "z", "u"], "label": [1, 0, np.nan, 1], "prob": [0.1, 0.2, 0.3, 0.4]}
    )
    frame_b = pd.DataFrame({"id": ["u", "z", "y"], "label": [1, np.nan, 0], "prob": [0.9, 0.8, 0.7]})
    paired = pair_predictions(frame_a, frame_b)
    assert paired.to_dict("list") == {
        "id": ["y", "u"],
        "label": [0, 1],
        "prob_a": [0.2, 0.4],
        "prob_b": [0.7, 0.9],
    }
    other_labels = frame_b.assign(label=[0, np.nan, 0])
    with pytest.raises(ComparisonError, match="not of the same dataset"):
        pair_predictions(frame_a, other_labels)


@pytest.mark.parametrize(
    ("labels", "probs_a", "probs_b", "threshold", "message"),
    [
        ([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3], 0.5, "differ in length"),
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], 0.5, "at least 2 tumour and 2 normal"),
        ([1, 0, 1, 0], [0.1, np.nan, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], 0.5, "NaN"),
        ([1, 0, np.nan, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], 0.5, "missing"),
        ([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], 1.5, "threshold"),
        ([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], float("nan"), "threshold"),
    ],
)
def test_bad_input_raises_a_comparison_error(labels, probs_a, probs_b, threshold, message):
    with pytest.raises(ComparisonError, match=message) as caught:
        compare_predictions(labels, probs_a, probs_b, threshold)
    assert isinstance(caught.value, PatchLensError)


def test_mcnemar_refuses_bad_input():
    with pytest.raises(ComparisonError, match="differ in length"):
        mcnemar_exact([True, False], [True])
    with pytest.raises(ComparisonError, match="True/False"):
        mcnemar_exact([1.0, np.nan], [1, 0])


# --------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def kaggle_dir(tmp_path_factory) -> Path:
    """32 real patches (16 tumour, 16 normal) in the Kaggle layout."""
    return copy_kaggle_subset(tmp_path_factory.mktemp("kaggle"), PER_CLASS)


@pytest.fixture(scope="module")
def two_models(kaggle_dir, tmp_path_factory, fit_tiny_model) -> tuple[Path, Path]:
    """Two real tiny CNNs fitted for different numbers of epochs: different scores, same patches."""
    folder = tmp_path_factory.mktemp("models")
    return (
        fit_tiny_model(kaggle_dir, folder / "a.keras", epochs=4),
        fit_tiny_model(kaggle_dir, folder / "b.keras", epochs=1),
    )


def test_cli_compare_json_prints_exactly_the_keys_from_the_shared_cache(run_cli, two_models, kaggle_dir):
    from core.data.dataset import open_dataset
    from core.evaluate.predictions import read_predictions

    model_a, model_b = two_models
    code, out, err = run_cli("compare", model_a, model_b, kaggle_dir, "--threshold", 0.49, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == [*EXPECTED_KEYS, "training_overlap_a", "training_overlap_b"]
    assert result["n"] == 2 * PER_CLASS
    assert result["training_overlap_a"] is None  # models saved outside a run carry no training record

    # The predictions went through the prediction cache that `evaluate` and the Evaluate page read.
    file_a, file_b = prediction_files(model_a, model_b, open_dataset(kaggle_dir))
    frame_a, frame_b = read_predictions(file_a), read_predictions(file_b)
    assert not np.allclose(frame_a["prob"], frame_b["prob"])  # two different models
    expected = compare_predictions(frame_a["label"], frame_a["prob"], frame_b["prob"], 0.49)
    assert result["auc_diff_ci"] == pytest.approx(expected.pop("auc_diff_ci"))
    assert {key: result[key] for key in expected} == pytest.approx(expected)
    code, out, err = run_cli("evaluate", model_a, kaggle_dir, "--json")
    assert json.loads(out)["auc"] == pytest.approx(result["auc_a"])


def test_paired_predictions_fill_the_shared_cache_and_report_progress_over_both_models(
    two_models, kaggle_dir
):
    from core.data.dataset import open_dataset
    from core.evaluate.predictions import cached_predictions

    dataset = open_dataset(kaggle_dir)
    calls = []
    paired = paired_predictions(
        *two_models, dataset, progress=lambda done, total: calls.append((done, total))
    )
    assert list(paired.columns) == ["id", "label", "prob_a", "prob_b"] and len(paired) == len(dataset)
    assert {total for _, total in calls} == {2 * len(dataset)}
    assert [done for done, _ in calls] == sorted(done for done, _ in calls) and calls[-1][0] == 2 * len(
        dataset
    )
    again = cached_predictions(two_models[1], dataset)  # what `evaluate` and the Evaluate page read
    assert again.attrs["cached"] == str(prediction_files(*two_models, dataset)[1])
    assert np.array_equal(again["prob"].to_numpy(), paired["prob_b"].to_numpy())


def test_cli_compare_table_says_whether_the_differences_are_significant(run_cli, two_models, kaggle_dir):
    code, out, err = run_cli("compare", *two_models, kaggle_dir)
    assert code == 0, err
    assert "DeLong test of the AUCs" in out and "exact McNemar" in out
    assert out.count("significant at 5 %") == 2
    assert "patches called differently" in out


def test_cli_compare_refuses_an_unlabelled_dataset_and_a_bad_threshold(
    run_cli, two_models, kaggle_dir, tmp_path
):
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for path in sorted((kaggle_dir / "train").iterdir())[:6]:
        shutil.copy(path, unlabelled)
    code, out, err = run_cli("compare", *two_models, unlabelled)
    assert code == 2 and out == ""
    assert "unlabelled" in err and "comparing models needs labels" in err
    with pytest.raises(SystemExit) as exit_info:
        run_cli("compare", *two_models, kaggle_dir, "--threshold", 1.5)
    assert exit_info.value.code == 2
