"""Model comparison: two models' predictions on the same labelled patches, tested against each other.

Owns the paired statistics and the pairing itself:
- `delong_test`: the two correlated ROC AUCs, their difference with a 95 % interval and the two-sided
  p-value of DeLong, DeLong & Clarke-Pearson (1988), computed with the O(n log n) midrank algorithm of
  Sun & Xu (2014, IEEE Signal Processing Letters 21:1389).
- `mcnemar_exact`: the exact McNemar test of two accuracies (a binomial test on the discordant pairs).
- `compare_predictions`: both, plus the accuracies at one threshold, as a JSON-safe dict
  (COMPARISON_KEYS, the `python -m core compare --json` output).
- `disagreements`: the patches one model gets right and the other wrong, in both directions.
- `paired_predictions`: both models' predictions on a dataset through core.evaluate.predict.cached_predictions,
  so the cache is the one the Evaluate page and `python -m core evaluate` fill and read.

Everything but `paired_predictions` is pure. Inputs are validated at the boundary; bad input raises
ComparisonError (core.errors). A patch is called tumour when `prob >= threshold`, as in core.evaluate.metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from core.constants import DEFAULT_THRESHOLD
from core.errors import ComparisonError, DatasetError
from core.evaluate.metrics import check_labels_probs, check_threshold

CONFIDENCE = 0.95
Z_95 = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))  # 1.959964…
COMPARISON_KEYS = (
    "n",
    "auc_a",
    "auc_b",
    "auc_diff",
    "auc_diff_ci",
    "delong_p",
    "accuracy_a",
    "accuracy_b",
    "mcnemar_p",
    "n_disagree",
)
PAIRED_COLUMNS = ("id", "label", "prob_a", "prob_b")
MIN_PER_CLASS = 2  # DeLong's variance needs two patches of each class
SIGNIFICANCE_LEVEL = 0.05


class DelongResult(NamedTuple):
    """Two correlated AUCs and the test of their difference (a - b)."""

    auc_a: float
    auc_b: float
    diff: float
    ci: tuple[float, float]  # 95 % interval of diff: diff ± 1.96 SE (normal approximation)
    p: float  # two-sided p-value of H0: auc_a == auc_b
    se: float  # DeLong's standard error of diff


# --------------------------------------------------------------------------- validation


def _check_pair(labels, probs_a, probs_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels 0/1 and two probability arrays of the same length, both classes present."""
    try:
        labels_a, probs_a = check_labels_probs(labels, probs_a)
        labels_b, probs_b = check_labels_probs(labels, probs_b)
    except ValueError as error:
        raise ComparisonError(str(error)) from None
    counts = np.bincount(labels_a, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise ComparisonError(
            f"comparing AUCs needs at least {MIN_PER_CLASS} tumour and {MIN_PER_CLASS} normal patches; "
            f"got {counts[1]} tumour and {counts[0]} normal."
        )
    return labels_a, probs_a, probs_b


def _threshold(threshold: float) -> float:
    try:
        return check_threshold(threshold)
    except (TypeError, ValueError) as error:
        raise ComparisonError(str(error)) from None


def significance(p: float) -> str:
    """'significant' or 'not significant' at the 5 % level (SIGNIFICANCE_LEVEL)."""
    return "significant" if p < SIGNIFICANCE_LEVEL else "not significant"


# --------------------------------------------------------------------------- DeLong


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their mean rank (O(n log n))."""
    return stats.rankdata(values, method="average", axis=-1)


def _delong_covariance(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance (k, k) for k score rows `probs` (k, n) — Sun & Xu's
    algorithm: the structural components come from three midrankings instead of m x n comparisons."""
    positive = labels == 1
    x, y = probs[:, positive], probs[:, ~positive]
    m, n = x.shape[1], y.shape[1]
    rank_x, rank_y = _midranks(x), _midranks(y)
    rank_z = _midranks(np.concatenate([x, y], axis=1))
    aucs = (rank_z[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (rank_z[:, :m] - rank_x) / n  # each tumour patch: share of normal patches it outranks
    v01 = 1.0 - (rank_z[:, m:] - rank_y) / m  # each normal patch: share of tumour patches above it
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong_test(labels, probs_a, probs_b) -> DelongResult:
    """DeLong's test of two correlated ROC AUCs measured on the same patches.

    Parameters
    ----------
    labels : array of 0/1 (1 = tumour), at least 2 of each class.
    probs_a, probs_b : the two models' probabilities of tumour for the same patches, in [0, 1].

    Returns
    -------
    DelongResult(auc_a, auc_b, diff = auc_a - auc_b, 95 % ci of diff, two-sided p, se). When the
    difference has no variance (e.g. identical scores), p is 1 for a zero difference and 0 otherwise.
    """
    labels, probs_a, probs_b = _check_pair(labels, probs_a, probs_b)
    aucs, covariance = _delong_covariance(labels, np.vstack([probs_a, probs_b]))
    diff = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    se = math.sqrt(max(variance, 0.0))
    if se < 1e-12:  # no spread: the difference is exact
        p = 1.0 if abs(diff) < 1e-12 else 0.0
        return DelongResult(float(aucs[0]), float(aucs[1]), diff, (diff, diff), p, 0.0)
    p = float(2 * stats.norm.sf(abs(diff) / se))
    ci = (diff - Z_95 * se, diff + Z_95 * se)
    return DelongResult(float(aucs[0]), float(aucs[1]), diff, ci, p, se)


# --------------------------------------------------------------------------- McNemar


def _check_correct(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ComparisonError(f"{name} must be 1-D; got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ComparisonError(f"{name} must hold True/False (or 1/0); got dtype {array.dtype}.")
    as_float = array.astype(float)
    if not np.isin(as_float, (0.0, 1.0)).all():
        raise ComparisonError(f"{name} must hold True/False (or 1/0) only; found NaN or other values.")
    return as_float.astype(bool)


def mcnemar_exact(correct_a, correct_b) -> float:
    """The exact (binomial) McNemar test of two classifiers' accuracies on the same patches.

    Only the discordant patches count: b = A right and B wrong, c = the reverse. Under H0 (equal
    accuracy) b ~ Binomial(b + c, 1/2); the two-sided p-value is min(1, 2 P(X <= min(b, c))),
    1 when the models never disagree.
    """
    correct_a = _check_correct(correct_a, "correct_a")
    correct_b = _check_correct(correct_b, "correct_b")
    if len(correct_a) != len(correct_b):
        raise ComparisonError(
            f"correct_a and correct_b differ in length: {len(correct_a)} and {len(correct_b)}."
        )
    if len(correct_a) == 0:
        raise ComparisonError("No patches to compare: correct_a and correct_b are empty.")
    b = int(np.count_nonzero(correct_a & ~correct_b))
    c = int(np.count_nonzero(~correct_a & correct_b))
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5)))


# --------------------------------------------------------------------------- the comparison


def compare_predictions(labels, probs_a, probs_b, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Every number of the comparison of model A with model B, JSON-safe, keys COMPARISON_KEYS.

    n (patches), auc_a, auc_b, auc_diff (a - b), auc_diff_ci ([low, high], DeLong, 95 %), delong_p,
    accuracy_a and accuracy_b at `threshold` (tumour when prob >= threshold), mcnemar_p (exact) and
    n_disagree (patches the two models call differently: exactly one of them is right on each).
    """
    labels, probs_a, probs_b = _check_pair(labels, probs_a, probs_b)
    threshold = _threshold(threshold)
    delong = delong_test(labels, probs_a, probs_b)
    correct_a = (probs_a >= threshold) == (labels == 1)
    correct_b = (probs_b >= threshold) == (labels == 1)
    return {
        "n": len(labels),
        "auc_a": delong.auc_a,
        "auc_b": delong.auc_b,
        "auc_diff": delong.diff,
        "auc_diff_ci": [float(delong.ci[0]), float(delong.ci[1])],
        "delong_p": delong.p,
        "accuracy_a": float(correct_a.mean()),
        "accuracy_b": float(correct_b.mean()),
        "mcnemar_p": mcnemar_exact(correct_a, correct_b),
        "n_disagree": int(np.count_nonzero(correct_a != correct_b)),
    }


@dataclass(frozen=True)
class Disagreements:
    """The patches the models call differently, each frame with PAIRED_COLUMNS plus `gap`
    (|prob_a - prob_b|), the widest gap first."""

    a_right: pd.DataFrame  # A right, B wrong
    b_right: pd.DataFrame  # B right, A wrong


def _check_paired(paired: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PAIRED_COLUMNS if c not in paired.columns]
    if missing:
        raise ComparisonError(
            f"paired predictions lack column(s) {missing}; expected {list(PAIRED_COLUMNS)}."
        )
    _check_pair(paired["label"].to_numpy(), paired["prob_a"].to_numpy(), paired["prob_b"].to_numpy())
    return paired


def disagreements(paired: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> Disagreements:
    """Split the patches the two models call differently at `threshold` into A right/B wrong and
    B right/A wrong. `paired` has PAIRED_COLUMNS (as `paired_predictions` returns)."""
    paired = _check_paired(paired)
    threshold = _threshold(threshold)
    tumour = paired["label"] == 1
    correct_a = (paired["prob_a"] >= threshold) == tumour
    correct_b = (paired["prob_b"] >= threshold) == tumour
    rows = paired[list(PAIRED_COLUMNS)].assign(gap=(paired["prob_a"] - paired["prob_b"]).abs())

    def widest_first(mask: pd.Series) -> pd.DataFrame:
        chosen = rows[mask].sort_values(["gap", "id"], ascending=[False, True], kind="stable")
        return chosen.reset_index(drop=True)

    return Disagreements(
        a_right=widest_first(correct_a & ~correct_b), b_right=widest_first(~correct_a & correct_b)
    )


def compare_paired(paired: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """`compare_predictions` of a paired frame (PAIRED_COLUMNS)."""
    paired = _check_paired(paired)
    return compare_predictions(paired["label"], paired["prob_a"], paired["prob_b"], threshold)


# --------------------------------------------------------------------------- pairing predictions


def pair_predictions(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> pd.DataFrame:
    """The labelled patches both prediction frames (id, label, prob) hold, as one frame with
    PAIRED_COLUMNS in the order of `frame_a`. Patches only one model could read are left out."""
    for name, frame in (("A", frame_a), ("B", frame_b)):
        missing = [c for c in ("id", "label", "prob") if c not in frame.columns]
        if missing:
            raise ComparisonError(f"the predictions of model {name} lack column(s) {missing}.")
    paired = frame_a[["id", "label", "prob"]].merge(
        frame_b[["id", "label", "prob"]], on="id", how="inner", suffixes=("_a", "_b"), validate="one_to_one"
    )
    paired = paired[paired["label_a"].notna()]
    if len(paired) and not (paired["label_a"] == paired["label_b"]).all():
        raise ComparisonError(
            "the two sets of predictions disagree on the labels: they are not of the same dataset."
        )
    if paired.empty:
        raise ComparisonError("the two models' predictions share no labelled patch.")
    paired = paired.rename(columns={"label_a": "label"})[list(PAIRED_COLUMNS)]
    return paired.reset_index(drop=True)


def prediction_files(model_a, model_b, dataset, *, cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Where core.evaluate.predict.cached_predictions keeps each model's predictions on `dataset` (they exist
    once computed, by this module, the Evaluate page or `python -m core evaluate`)."""
    from core.evaluate.predictions import prediction_cache_path

    return tuple(prediction_cache_path(model, dataset, cache_dir=cache_dir) for model in (model_a, model_b))


def paired_predictions(
    model_a: str | Path,
    model_b: str | Path,
    dataset,
    *,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Both models' predictions on the labelled `dataset`, paired (PAIRED_COLUMNS).

    Each model runs at most once per dataset: the predictions go through
    core.evaluate.predict.cached_predictions (the cache Evaluate shares). `progress(done, total)` counts patches over both models (total = 2 x the dataset's size). Raises DatasetError for an
    unlabelled dataset, ModelError for a model file that cannot be used.
    """
    from core.evaluate.predictions import cached_predictions

    if dataset.labels is None:
        raise DatasetError(
            f"{dataset.path} is unlabelled ({dataset.layout} layout): comparing models needs labels."
        )
    total = 2 * len(dataset)
    frames = []
    for number, model_path in enumerate((model_a, model_b)):

        def step(done: int, _total: int, offset: int = number * len(dataset)) -> None:
            if progress:
                progress(offset + done, total)

        frames.append(cached_predictions(model_path, dataset, cache_dir=cache_dir, progress=step))
    return pair_predictions(*frames)
