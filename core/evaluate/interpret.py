"""The interpretation of a set of predictions, fastai style: one object, built once, that every view of
a model's calls asks — the Evaluate page's confusion matrix and its cells, the Mistakes page, the CLI.

    interp = Interpretation(predictions)          # id, label, prob[, quality]
    interp.confusion(0.42)                        # [[TN, FP], [FN, TP]]
    interp.cell("FP", 0.42)                       # the false positives, most confident first
    interp.mistakes(0.42, kind="false negative")  # FPs and FNs, filtered, most confident first
    interp.top_losses(20)                         # the patches with the highest log loss, any threshold

Confidence has one definition here (`confidence`): how far the score sits toward the call the model made
at the threshold, |prob − (1 − call)| — 1 means certain of the call, right or wrong. Unlabelled rows are
kept in `predictions` and left out of every labelled view. Nothing here imports Streamlit or TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.constants import DEFAULT_THRESHOLD, LABEL_NAMES
from core.errors import InputError
from core.evaluate.metrics import check_labels_probs, check_threshold, confusion_at
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
_EPSILON = 1e-7  # clips probabilities in the log loss


def call_of(prob: float, threshold: float) -> str:
    """The class name called at `threshold` (tumour when prob >= threshold)."""
    return LABEL_NAMES[int(prob >= threshold)]


def confidence(probs, called) -> np.ndarray:
    """How far each score sits toward the call made: |prob − (1 − called)|, in [0, 1]."""
    return np.abs(np.asarray(probs, dtype=float) - (1 - np.asarray(called, dtype=float)))


class Interpretation:
    """The predictions of one model on one dataset, and every view of its calls at a threshold."""

    def __init__(self, predictions: pd.DataFrame) -> None:
        check_columns(predictions, PREDICTION_COLUMNS)
        self.predictions = predictions
        self.labelled = predictions[predictions["label"].notna()]
        check_labels_probs(self.labelled["label"].to_numpy(), self.labelled["prob"].to_numpy())

    def __len__(self) -> int:
        return len(self.labelled)

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


def clicked_cell(points: list[dict]) -> str | None:
    """The confusion cell a Plotly click selected, from st.plotly_chart's selection points.

    The matrix is drawn as one scatter trace of four markers in CELLS order, so a point's index
    names its cell; None when nothing (or something else) was clicked.
    """
    names = list(CELLS)
    for point in points:
        index = point.get("point_index", point.get("point_number"))
        if isinstance(index, int) and 0 <= index < len(names):
            return names[index]
    return None


def mistakes_csv(wrong: pd.DataFrame, sources: list[str]) -> bytes:
    """The Mistakes page's download: its rows plus where each patch lives, labels as integers 0/1."""
    export = wrong.assign(label=wrong["label"].astype(int), source=sources)
    return export.to_csv(index=False).encode()
