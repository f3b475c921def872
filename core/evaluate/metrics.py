"""The metrics of a set of predictions, sklearn style: validated pure functions.

Labels and probabilities in (core.evaluate.predictions holds the predictions frame they come from),
numbers, arrays or small frames out. Every function here is pure:
numbers, arrays or small frames out. Inputs are validated once at the boundary (`_check`), after
which the code trusts them. A patch is predicted tumour when `prob >= threshold`, the same rule
scikit-learn's curves use, so a threshold read off a curve reproduces its point exactly.

Nothing here imports TensorFlow: the Evaluate page moves its threshold without touching a model.
scikit-learn is imported by the functions that use it, so a module that only validates a threshold
(the command line a client of the job engine parses) does not pay its ~1 s import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.constants import DEFAULT_THRESHOLD
from core.errors import InputError
from core.probabilities import (  # noqa: F401  (their home; re-exported for the metric functions' callers)
    CALIBRATION_BINS,
    ReliabilityCurve,
    check_labels_probs,
    reliability_curve,
)

BOOTSTRAP_METRICS = ("auc", "accuracy")
_MAX_BOOTSTRAP_CELLS = 4_000_000  # resampled indices held at once: bounds memory on 220,000 rows


def _skm():
    """sklearn.metrics, imported on first use (it brings SciPy and pandas along)."""
    from sklearn import metrics

    return metrics


# --------------------------------------------------------------------------- validation


def check_threshold(threshold: float) -> float:
    """The threshold as a float; InputError unless it lies in [0, 1]."""
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise InputError(f"threshold must lie in [0, 1]; got {threshold}.")
    return threshold


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def _one_class_reason(labels: np.ndarray) -> str | None:
    if labels.min() == labels.max():
        only = "tumour (1)" if labels[0] == 1 else "normal (0)"
        return f"undefined: every label is {only}, so there is nothing to rank against"
    return None


# --------------------------------------------------------------------------- metrics


def confusion_at(labels, probs, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """The 2x2 confusion matrix [[tn, fp], [fn, tp]] when `prob >= threshold` means tumour."""
    labels, probs = check_labels_probs(labels, probs)
    return _confusion(labels, probs, check_threshold(threshold))


def _confusion(labels: np.ndarray, probs: np.ndarray, threshold: float) -> np.ndarray:
    predicted = probs >= threshold
    positive = labels == 1
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted & ~positive))
    fn = int(np.count_nonzero(~predicted & positive))
    tn = len(labels) - tp - fp - fn
    return np.array([[tn, fp], [fn, tp]], dtype=np.int64)


def metrics_at(labels, probs, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Every headline metric of one set of predictions at one threshold.

    Parameters
    ----------
    labels : array of 0/1, the true classes (1 = tumour).
    probs : array of floats in [0, 1], the predicted probability of tumour.
    threshold : a patch is predicted tumour when `prob >= threshold`.

    Returns
    -------
    dict with n, threshold, accuracy, balanced_accuracy, sensitivity, specificity, precision, f1,
    auc, average_precision, log_loss, brier, ece, confusion ([[tn, fp], [fn, tp]] as lists) and
    `undefined` ({metric: reason}) naming the metrics left as None because the data cannot define
    them (one class only, or no predicted positives).
    """
    labels, probs = check_labels_probs(labels, probs)
    threshold = check_threshold(threshold)
    (tn, fp), (fn, tp) = _confusion(labels, probs, threshold).tolist()
    n = len(labels)
    undefined: dict[str, str] = {}
    counted = _confusion_metrics(tn, fp, fn, tp, threshold, undefined)
    ranked = _ranking_metrics(labels, probs, tp + fn, undefined)
    return {
        "n": n,
        "threshold": threshold,
        "accuracy": (tp + tn) / n,
        **counted,
        **ranked,
        **_probability_metrics(labels, probs),
        "confusion": [[tn, fp], [fn, tp]],
        "undefined": undefined,
    }


def _confusion_metrics(
    tn: int, fp: int, fn: int, tp: int, threshold: float, undefined: dict[str, str]
) -> dict:
    """The metrics of the confusion counts (balanced accuracy, sensitivity, specificity, precision, f1);
    each one the counts cannot define is None, with its reason added to `undefined`."""
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    precision = _ratio(tp, tp + fp)
    if sensitivity is None:
        undefined["sensitivity"] = "undefined: no tumour patches in the labels"
    if specificity is None:
        undefined["specificity"] = "undefined: no normal patches in the labels"
    if precision is None:
        undefined["precision"] = f"undefined: no patch is predicted tumour at {threshold:g}"
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    if f1 is None:
        undefined["f1"] = "undefined: no tumour patches and none predicted"
    recalls = [r for r in (sensitivity, specificity) if r is not None]
    balanced_accuracy = float(np.mean(recalls))  # as scikit-learn: mean of the defined recalls
    return {
        "balanced_accuracy": balanced_accuracy,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": f1,
    }


def _ranking_metrics(
    labels: np.ndarray, probs: np.ndarray, positives: int, undefined: dict[str, str]
) -> dict:
    """AUC and average precision, threshold-free; None (reason in `undefined`) when the labels cannot
    define them."""
    one_class = _one_class_reason(labels)
    if one_class:
        auc = None
        undefined["auc"] = one_class
    else:
        auc = float(_skm().roc_auc_score(labels, probs))
    if positives == 0:
        average_precision = None
        undefined["average_precision"] = "undefined: no tumour patches in the labels"
    else:
        average_precision = float(_skm().average_precision_score(labels, probs))
    return {"auc": auc, "average_precision": average_precision}


def _probability_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """The metrics of the probabilities themselves: log loss, Brier score and ECE."""
    eps = np.finfo(np.float64).eps  # the clipping scikit-learn's log_loss applies
    clipped = np.clip(probs, eps, 1 - eps)
    log_loss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    brier = float(np.mean((probs - labels) ** 2))
    return {"log_loss": log_loss, "brier": brier, "ece": reliability_curve(labels, probs).ece}


# --------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class RocPoints:
    """ROC curve points; `thresholds[i]` gives (fpr[i], tpr[i]); the first is +inf (nothing
    predicted tumour). `auc` is None, and the undefined axis NaN, when only one class is present."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float | None


@dataclass(frozen=True)
class PrPoints:
    """Precision-recall points, all three arrays the same length; the last threshold is +inf
    (the conventional end point precision 1, recall 0). `average_precision` is None without
    tumour patches."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    average_precision: float | None


def roc_points(labels, probs) -> RocPoints:
    """The ROC curve (scikit-learn's, intermediate collinear points dropped) with its AUC."""
    labels, probs = check_labels_probs(labels, probs)
    with warnings.catch_warnings():  # one class: sklearn warns and returns NaN for one axis
        warnings.simplefilter("ignore")
        fpr, tpr, thresholds = _skm().roc_curve(labels, probs)
    auc = None if _one_class_reason(labels) else float(_skm().auc(fpr, tpr))
    return RocPoints(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=auc)


def pr_points(labels, probs) -> PrPoints:
    """The precision-recall curve with average precision."""
    labels, probs = check_labels_probs(labels, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, thresholds = _skm().precision_recall_curve(labels, probs)
    has_positive = bool(labels.any())
    average_precision = float(_skm().average_precision_score(labels, probs)) if has_positive else None
    return PrPoints(
        precision=precision,
        recall=recall,
        thresholds=np.append(thresholds, np.inf),
        average_precision=average_precision,
    )


# --------------------------------------------------------------------------- thresholds


def sensitivity_preset_name(target_sensitivity: float) -> str:
    return f"sensitivity≥{target_sensitivity:g}"


def threshold_presets(labels, probs, target_sensitivity: float = 0.95) -> dict[str, float | None]:
    """Named thresholds worth one click.

    Returns {"0.5": 0.5, "youden": t, "sensitivity≥0.95": t}. Youden's t maximises
    sensitivity + specificity - 1 (the highest such t on ties). The sensitivity preset is the
    HIGHEST threshold whose sensitivity still reaches the target, i.e. the fewest false alarms at
    that sensitivity. Presets the data cannot define (one class only) are None.
    """
    labels, probs = check_labels_probs(labels, probs)
    if not 0.0 < target_sensitivity <= 1.0:
        raise InputError(f"target_sensitivity must lie in (0, 1]; got {target_sensitivity}.")
    presets: dict[str, float | None] = {"0.5": DEFAULT_THRESHOLD, "youden": None}
    if not _one_class_reason(labels):
        fpr, tpr, thresholds = _skm().roc_curve(labels, probs, drop_intermediate=False)
        youden = tpr[1:] - fpr[1:]  # skip the +inf point where nothing is predicted tumour
        presets["youden"] = float(thresholds[1:][int(np.argmax(youden))])
    presets[sensitivity_preset_name(target_sensitivity)] = highest_threshold_for_sensitivity(
        labels, probs, target_sensitivity
    )
    return presets


def highest_threshold_for_sensitivity(labels, probs, target_sensitivity: float) -> float | None:
    """The highest threshold t with sensitivity(t) >= target; None without tumour patches.

    Sensitivity at t counts tumour patches with prob >= t, so with k of them needed, t is the k-th
    highest tumour probability: any higher threshold keeps fewer than k."""
    labels, probs = check_labels_probs(labels, probs)
    positive_probs = np.sort(probs[labels == 1])[::-1]
    n_positive = len(positive_probs)
    if n_positive == 0:
        return None
    reachable = np.arange(1, n_positive + 1) / n_positive  # sensitivity with k = 1..P kept
    needed = int(np.searchsorted(reachable, target_sensitivity, side="left")) + 1
    return float(positive_probs[min(needed, n_positive) - 1])


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    labels,
    probs,
    metric: str = "auc",
    threshold: float = DEFAULT_THRESHOLD,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of AUC or accuracy, resampling patches with replacement.

    Vectorised: each resample is summarised by per-score-group counts (AUC) or a mean of
    correctness (accuracy), in chunks that bound memory. Resamples that hold one class only are
    skipped for AUC. Returns (low, high), or None when the metric is undefined (one class).
    """
    labels, probs = check_labels_probs(labels, probs)
    threshold = check_threshold(threshold)
    _check_bootstrap_arguments(metric, n_boot, confidence)
    if metric == "auc" and _one_class_reason(labels):
        return None
    if metric == "accuracy":
        summarise = _accuracy_summariser(labels, probs, threshold)
    else:
        summarise = _auc_summariser(labels, probs)
    values = _resampled_values(summarise, len(labels), int(n_boot), seed)
    if len(values) == 0:
        return None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _check_bootstrap_arguments(metric: str, n_boot: int, confidence: float) -> None:
    if metric not in BOOTSTRAP_METRICS:
        raise InputError(f"metric must be one of {BOOTSTRAP_METRICS}; got {metric!r}.")
    if int(n_boot) != n_boot or n_boot < 1:
        raise InputError(f"n_boot must be a positive integer; got {n_boot}.")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie in (0, 1); got {confidence}.")


def _accuracy_summariser(labels: np.ndarray, probs: np.ndarray, threshold: float) -> Callable:
    """Resample rows of patch indices -> the accuracy of each resample."""
    correct = ((probs >= threshold) == (labels == 1)).astype(np.float64)

    def summarise(idx: np.ndarray) -> np.ndarray:
        return correct[idx].mean(axis=1)

    return summarise


def _auc_summariser(labels: np.ndarray, probs: np.ndarray) -> Callable:
    """Resample rows of patch indices -> the AUC of each resample (NaN when it holds one class)."""
    # Group tied scores: AUC = P(score_pos > score_neg) + 0.5 P(tie), from group counts.
    groups, inverse = np.unique(probs, return_inverse=True)
    positive = labels == 1

    def summarise(idx: np.ndarray) -> np.ndarray:
        rows = idx.shape[0]
        flat = (np.arange(rows)[:, None] * len(groups) + inverse[idx]).ravel()
        weights = positive[idx].ravel()
        size = rows * len(groups)
        pos = np.bincount(flat, weights=weights, minlength=size).reshape(rows, -1)
        neg = np.bincount(flat, weights=~weights, minlength=size).reshape(rows, -1)
        neg_below = np.cumsum(neg, axis=1) - neg
        wins = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, wins / pairs, np.nan)

    return summarise


def _resampled_values(summarise: Callable, n: int, n_boot: int, seed: int) -> np.ndarray:
    """`summarise` over n_boot resamples of n patches, in chunks that bound memory; NaNs dropped."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_BOOTSTRAP_CELLS // n)
    values = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        values.append(summarise(rng.integers(0, n, size=(rows, n))))
    values = np.concatenate(values)
    return values[~np.isnan(values)]
