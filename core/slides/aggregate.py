"""Slide scores: how a slide's tile probabilities become one number.

Every aggregation takes the (rows, cols) tile probabilities (NaN where a tile was not scored or the
input-quality gate withheld it) and the threshold, and returns a score in [0, 1], so one threshold
calls a slide positive for every aggregation. A slide with no scored tile scores 0.

- max            the most tumour-like tile
- top3_mean      the mean of the TOP_K highest tiles (one stray tile weighs a third)
- proportion     the share of scored tissue tiles at or above the threshold
- smoothed_max   the max of the map averaged over each tile's 3 x 3 neighbourhood (scored tiles only):
                 spatial context, a lesion counts more than a lone tile

The default was chosen by slide-level AUC on the cohort bench/build_cohort.py builds (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.errors import InputError

TOP_K = 3
NEIGHBOURHOOD = 3  # tiles: the smoothing window of smoothed_max


def _scored(probabilities: np.ndarray) -> np.ndarray:
    values = np.asarray(probabilities, dtype=np.float64)
    return values[~np.isnan(values)]


def max_score(probabilities: np.ndarray, threshold: float) -> float:
    values = _scored(probabilities)
    return float(values.max()) if values.size else 0.0


def top_k_mean(probabilities: np.ndarray, threshold: float) -> float:
    values = np.sort(_scored(probabilities))[::-1][:TOP_K]
    return float(values.mean()) if values.size else 0.0


def proportion_above(probabilities: np.ndarray, threshold: float) -> float:
    values = _scored(probabilities)
    return float(np.mean(values >= threshold)) if values.size else 0.0


def smoothed_max(probabilities: np.ndarray, threshold: float) -> float:
    """The max over tiles of the mean of the scored tiles in its NEIGHBOURHOOD² window."""
    from scipy.ndimage import uniform_filter

    values = np.asarray(probabilities, dtype=np.float64)
    scored = ~np.isnan(values)
    if not scored.any():
        return 0.0
    sums = uniform_filter(np.where(scored, values, 0.0), NEIGHBOURHOOD, mode="constant")
    counts = uniform_filter(scored.astype(np.float64), NEIGHBOURHOOD, mode="constant")
    means = np.where(scored, sums / np.maximum(counts, 1e-12), 0.0)
    return float(np.clip(means.max(), 0.0, 1.0))


AGGREGATIONS: dict[str, Callable[[np.ndarray, float], float]] = {
    "max": max_score,
    "top3_mean": top_k_mean,
    "proportion": proportion_above,
    "smoothed_max": smoothed_max,
}
DEFAULT_AGGREGATE = "top3_mean"  # the highest slide AUC on the bench cohort: BENCHMARKS.md "Slides"


def check_aggregate(name: str) -> str:
    if name not in AGGREGATIONS:
        raise InputError(f"aggregate must be one of {', '.join(AGGREGATIONS)}; got {name!r}.")
    return name


def slide_scores(probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Every aggregation's score of one slide, rounded to 6 places."""
    return {name: round(aggregate(probabilities, threshold), 6) for name, aggregate in AGGREGATIONS.items()}
