"""Uncertainty per prediction: how much the 8 dihedral views of a patch disagree.

A tissue patch has no preferred orientation, so the model should say the same of all 8 rotations and
mirrors of it (core.evaluate.predict's TTA path). The **spread** of a prediction is the standard
deviation of those 8 probabilities; where the views disagree the model is guessing. A prediction is
**uncertain** when its spread is at least `UNCERTAIN_SPREAD`, a cut chosen on valA of
bench/unseen_slide_split.py with the bundled model by bench/bench_uncertainty.py; on valB, which took
no part, the patches it calls certain are right 97.7 % of the time and the rest 78.7 % (BENCHMARKS.md,
"Uncertainty per prediction").

The spread exists only where the 8 views were computed: predictions made with TTA carry it as the
column `SPREAD_COLUMN`; others do not, and every view says so rather than showing a blank.
This module owns the definition, the cut, and the risk-coverage curve; it never imports TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.constants import DEFAULT_THRESHOLD
from core.errors import InputError
from core.evaluate.metrics import check_labels_probs, check_threshold

SPREAD_COLUMN = "tta_spread"  # the std of the 8 dihedral views' probabilities, per prediction
# Spread at or above which a prediction is called uncertain: the smallest at which the bundled model's
# valA predictions at or above it are right at most 80 % of the time (bench/bench_uncertainty.py).
UNCERTAIN_SPREAD = 0.035
NO_SPREAD_NOTE = (
    "These predictions carry no uncertainty (the spread of the 8 flipped/rotated views): they were "
    "computed from one view; turn TTA on to see it."
)


def view_spread(view_probs) -> np.ndarray:
    """(n,) standard deviation of each row of (n, 8) per-view probabilities."""
    views = np.asarray(view_probs, dtype=np.float64)
    if views.ndim != 2 or views.shape[1] < 2:
        raise InputError(f"view probabilities must have shape (n, views >= 2); got {views.shape}.")
    return views.std(axis=1)


def has_spread(predictions: pd.DataFrame) -> bool:
    """Whether these predictions carry the spread of the 8 views (they were computed with TTA)."""
    return SPREAD_COLUMN in predictions.columns and bool(predictions[SPREAD_COLUMN].notna().any())


def uncertain_mask(spread, cut: float = UNCERTAIN_SPREAD) -> np.ndarray:
    """True where the spread is at least `cut` (False where it is unknown)."""
    spread = np.asarray(spread, dtype=np.float64)
    return np.nan_to_num(spread, nan=-1.0) >= cut


def certainty_word(spread: float | None, cut: float = UNCERTAIN_SPREAD) -> str:
    """'uncertain', 'certain', or 'unknown' (no spread: computed without TTA)."""
    if spread is None or not np.isfinite(spread):
        return "unknown"
    return "uncertain" if spread >= cut else "certain"


def certain_vs_rest(
    labels, probs, spread, *, cut: float = UNCERTAIN_SPREAD, threshold: float = DEFAULT_THRESHOLD
) -> dict:
    """Accuracy at `threshold` on the predictions called certain and on the uncertain rest, with
    their counts: {n_certain, n_uncertain, accuracy_certain, accuracy_uncertain, accuracy_all}."""
    labels, probs = check_labels_probs(labels, probs)
    correct = (probs >= check_threshold(threshold)) == (labels >= 0.5)
    uncertain = uncertain_mask(spread, cut)
    if len(uncertain) != len(labels):
        raise InputError(f"{len(uncertain)} spreads for {len(labels)} predictions.")

    def accuracy(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    return {
        "cut": float(cut),
        "n_certain": int((~uncertain).sum()),
        "n_uncertain": int(uncertain.sum()),
        "accuracy_certain": accuracy(~uncertain),
        "accuracy_uncertain": accuracy(uncertain),
        "accuracy_all": float(correct.mean()),
    }


def risk_coverage(labels, probs, spread, *, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """The risk-coverage curve of abstaining on the most uncertain predictions first.

    Predictions are kept from the smallest spread up; row k describes keeping the k+1 most certain:
    `coverage` (the fraction kept), `risk` (their error rate at `threshold`) and `spread` (the largest
    spread kept, so the cut that gives this coverage). Ties in spread enter together.
    """
    labels, probs = check_labels_probs(labels, probs)
    spread = np.asarray(spread, dtype=np.float64)
    if spread.shape != labels.shape or not np.isfinite(spread).all():
        raise InputError("risk-coverage needs one finite spread per prediction (predictions made with TTA).")
    wrong = ((probs >= check_threshold(threshold)) != (labels >= 0.5)).astype(np.float64)
    order = np.argsort(spread, kind="stable")
    kept = np.arange(1, len(order) + 1)
    risk = np.cumsum(wrong[order]) / kept
    sorted_spread = spread[order]
    last_of_tie = np.append(sorted_spread[1:] != sorted_spread[:-1], True)
    return pd.DataFrame({"coverage": kept / len(order), "risk": risk, "spread": sorted_spread})[
        last_of_tie
    ].reset_index(drop=True)


def risk_at_coverage(curve: pd.DataFrame, coverage: float) -> float:
    """The risk when keeping (at least) the `coverage` fraction most certain predictions."""
    if not 0.0 < coverage <= 1.0:
        raise InputError(f"coverage must be in (0, 1]; got {coverage}.")
    return float(curve.loc[curve["coverage"] >= coverage - 1e-12, "risk"].iloc[0])
