"""The interpretation of a set of predictions, fastai style: one object, built once, that every view of
a model's calls asks — the Evaluate page's confusion matrix and its cells, the Mistakes page, the CLI.

    interp = Interpretation.from_predictions(predictions, quality="ok")  # id, label, prob[, quality]
    interp.metrics(0.42)                          # every metric at 0.42, undefined ones with a reason
    interp.curves()                               # ROC, precision-recall and reliability (computed once)
    interp.presets()                              # 0.5, Youden's J, the sensitivity target
    interp.interval("auc")                        # its 95 % bootstrap interval
    interp.confusion(0.42)                        # [[TN, FP], [FN, TP]]
    interp.cell("FP", 0.42)                       # the false positives, most confident first
    interp.mistakes(0.42, kind="false negative")  # FPs and FNs, filtered, most confident first
    interp.top_losses(20)                         # the patches with the highest log loss, any threshold

Confidence has one definition here (`confidence`): how far the score sits toward the call the model made
at the threshold, |prob − (1 − call)| — 1 means certain of the call, right or wrong. Unlabelled rows are
kept in `predictions` and left out of every labelled view. Nothing here imports Streamlit or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from core.constants import DEFAULT_THRESHOLD, LABEL_NAMES
from core.errors import InputError
from core.evaluate.metrics import (
    PrPoints,
    ReliabilityCurve,
    RocPoints,
    bootstrap_ci,
    check_labels_probs,
    check_threshold,
    confusion_at,
    metrics_at,
    pr_points,
    reliability_curve,
    roc_points,
    threshold_presets,
)
from core.evaluate.predictions import ALL_QUALITIES, PREDICTION_COLUMNS, check_columns, with_quality

# The four cells of the confusion matrix, as (true label, predicted label).
CELLS = {"TN": (0, 0), "FP": (0, 1), "FN": (1, 0), "TP": (1, 1)}
CELL_NAMES = {
    "TN": "true negatives (normal, called normal)",
    "FP": "false positives (normal, called tumour)",
    "FN": "false negatives (tumour, called normal)",
    "TP": "true positives (tumour, called tumour)",
}
MISTAKE_KINDS = ("false positive", "false negative")
BOOTSTRAP_SAMPLES = 1000  # resamples behind every interval the Evaluate page shows
_EPSILON = 1e-7  # clips probabilities in the log loss


def call_of(prob: float, threshold: float) -> str:
    """The class name called at `threshold` (tumour when prob >= threshold)."""
    return LABEL_NAMES[int(prob >= threshold)]


def confidence(probs, called) -> np.ndarray:
    """How far each score sits toward the call made: |prob − (1 − called)|, in [0, 1]."""
    return np.abs(np.asarray(probs, dtype=float) - (1 - np.asarray(called, dtype=float)))


@dataclass(frozen=True)
class Curves:
    """The threshold-free curves of one set of predictions."""

    roc: RocPoints
    pr: PrPoints
    reliability: ReliabilityCurve


class Interpretation:
    """The predictions of one model on one dataset, and every view of its calls at a threshold.

    Raises InputError when the predictions lack a column, hold no labelled row, or carry a label
    other than 0/1 or a probability outside [0, 1].
    """

    def __init__(self, predictions: pd.DataFrame) -> None:
        check_columns(predictions, PREDICTION_COLUMNS)
        self.predictions = predictions
        self.labelled = predictions[predictions["label"].notna()]
        self.labels, self.probs = check_labels_probs(
            self.labelled["label"].to_numpy(), self.labelled["prob"].to_numpy()
        )

    @classmethod
    def from_predictions(cls, predictions: pd.DataFrame, *, quality: str = ALL_QUALITIES) -> Interpretation:
        """The interpretation of `predictions` (id, label, prob[, quality]), of the rows whose input
        quality matches `quality` only (core.evaluate.predictions.with_quality: all, ok or a flag)."""
        check_columns(predictions, PREDICTION_COLUMNS)
        return cls(with_quality(predictions, quality))

    def __len__(self) -> int:
        return len(self.labelled)

    @property
    def n_unlabelled(self) -> int:
        """Rows of the predictions without a label: left out of every view."""
        return len(self.predictions) - len(self.labelled)

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())

    def metrics(self, threshold: float = DEFAULT_THRESHOLD) -> dict:
        """Every metric at `threshold` (core.evaluate.metrics.metrics_at: undefined ones are None, with
        the reason under "undefined")."""
        return metrics_at(self.labels, self.probs, threshold)

    def curves(self) -> Curves:
        """ROC, precision-recall and reliability curves; computed once, they need no threshold."""
        return self._curves

    @cached_property
    def _curves(self) -> Curves:
        probs, labels = self.probs, self.labels
        return Curves(roc_points(labels, probs), pr_points(labels, probs), reliability_curve(labels, probs))

    def presets(self, target_sensitivity: float = 0.95) -> dict[str, float | None]:
        """Named thresholds: 0.5, Youden's J and the highest one reaching `target_sensitivity`."""
        return threshold_presets(self.labels, self.probs, target_sensitivity)

    def interval(
        self, metric: str, threshold: float = DEFAULT_THRESHOLD, *, n_boot: int = BOOTSTRAP_SAMPLES
    ) -> tuple[float, float] | None:
        """The 95 % percentile-bootstrap interval of `metric` ("auc" ignores the threshold, "accuracy"),
        resampling patches (seed 0, so the same predictions give the same interval); None when undefined."""
        threshold = DEFAULT_THRESHOLD if metric == "auc" else threshold
        return bootstrap_ci(self.labels, self.probs, metric, threshold, n_boot=n_boot, seed=0)

    def confusion(self, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """[[TN, FP], [FN, TP]] of the labelled rows at `threshold`."""
        return confusion_at(self.labelled["label"].to_numpy(), self.labelled["prob"].to_numpy(), threshold)

    def calls(self, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
        """The labelled rows with `called` (0/1 at `threshold`) and `confidence` added."""
        threshold = check_threshold(threshold)
        rows = self.labelled.copy()
        rows["called"] = (rows["prob"] >= threshold).astype(int)
        rows["confidence"] = confidence(rows["prob"], rows["called"])
        return rows

    def cell(self, cell: str, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
        """The labelled rows in one confusion-matrix cell ("TN", "FP", "FN", "TP"), most confident first."""
        if cell not in CELLS:
            raise InputError(f"cell must be one of {list(CELLS)}; got {cell!r}.")
        truth, called = CELLS[cell]
        rows = self.calls(threshold)
        rows = rows[(rows["label"] == truth) & (rows["called"] == called)]
        return _most_confident_first(rows.drop(columns="called"))

    def mistakes(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        kind: str | None = None,
        min_prob: float = 0.0,
        max_prob: float = 1.0,
        quality: str = ALL_QUALITIES,
    ) -> pd.DataFrame:
        """False positives and false negatives, most confident first, with `kind` and `confidence`.

        Filter with `kind` ("false positive" or "false negative"), an inclusive probability range
        [min_prob, max_prob] and `quality` (see core.evaluate.predictions.with_quality).
        """
        if kind is not None and kind not in MISTAKE_KINDS:
            raise InputError(f"kind must be one of {MISTAKE_KINDS} or None; got {kind!r}.")
        if min_prob > max_prob:
            raise InputError(f"min_prob ({min_prob}) is above max_prob ({max_prob}).")
        rows = self.calls(threshold)
        wrong = rows[rows["called"] != rows["label"]].drop(columns="called")
        wrong.insert(
            len(wrong.columns) - 1, "kind", np.where(wrong["label"] == 1, "false negative", "false positive")
        )
        if kind is not None:
            wrong = wrong[wrong["kind"] == kind]
        wrong = wrong[(wrong["prob"] >= min_prob) & (wrong["prob"] <= max_prob)]
        return _most_confident_first(with_quality(wrong, quality))

    def top_losses(self, k: int = 20) -> pd.DataFrame:
        """The `k` labelled patches with the highest log loss (no threshold): the model's worst surprises."""
        if int(k) < 1:
            raise InputError(f"k must be a positive integer; got {k}.")
        rows = self.labelled.copy()
        p = np.clip(rows["prob"].to_numpy(), _EPSILON, 1 - _EPSILON)
        rows["loss"] = -np.where(rows["label"].to_numpy() == 1, np.log(p), np.log(1 - p))
        rows = rows.sort_values(["loss", "id"], ascending=[False, True], kind="stable")
        return rows.head(int(k)).reset_index(drop=True)


def _most_confident_first(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["confidence", "id"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def mistakes_csv(wrong: pd.DataFrame, sources: list[str]) -> bytes:
    """The Mistakes page's download: its rows plus where each patch lives, labels as integers 0/1."""
    export = wrong.assign(label=wrong["label"].astype(int), source=sources)
    return export.to_csv(index=False).encode()
