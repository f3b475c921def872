"""Slide-level labels and metrics: the labels CSV in, AUC (with its bootstrap interval), accuracy,
sensitivity and specificity of the slide scores at the slide threshold out, and the slide thresholds
worth one click (0.5, Youden's J, sensitivity ≥ 0.95 on the slide ROC); core.evaluate.metrics does the
arithmetic. The slide threshold is not the tile threshold: a slide score aggregates many tiles, so at
a tile's 0.5 max-like scores call most negative slides positive (BENCHMARKS.md, "Slides")."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from core.constants import DEFAULT_THRESHOLD
from core.errors import InputError

SCORED_STATUSES = ("done", "cached")


def read_labels(path: str | Path) -> dict[str, int]:
    """{slide name: 0/1} from a CSV with the columns `slide,label`; InputError when it is not one."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"slide", "label"} <= set(reader.fieldnames or ()):
                raise InputError(f"{path.name}: a labels CSV needs the columns slide,label.")
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name}: cannot be read ({error}).") from None
    labels = {}
    for number, row in enumerate(rows, start=2):
        text = (row["label"] or "").strip()
        if text not in ("0", "1"):
            raise InputError(f"{path.name} line {number}: label must be 0 or 1; got {text!r}.")
        labels[(row["slide"] or "").strip()] = int(text)
    return labels


def slide_metrics(labels, scores, threshold: float) -> dict:
    """AUC with its 95 % bootstrap interval, accuracy, sensitivity and specificity of slide `scores`
    against `labels` at `threshold` (None, with the reason in `undefined`, where one class is missing)."""
    from core.evaluate.metrics import bootstrap_ci, metrics_at

    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if not labels.size:
        return {"n": 0, "auc": None, "auc_ci": None, "accuracy": None, "sensitivity": None,
                "specificity": None, "threshold": threshold, "undefined": {"auc": "no labelled slide was scored"}}  # fmt: skip
    metrics = metrics_at(labels, scores, threshold)
    interval = bootstrap_ci(labels, scores, "auc", threshold)
    return {
        "n": metrics["n"],
        "auc": metrics["auc"],
        "auc_ci": list(interval) if interval else None,
        "accuracy": metrics["accuracy"],
        "sensitivity": metrics["sensitivity"],
        "specificity": metrics["specificity"],
        "threshold": threshold,
        "undefined": metrics["undefined"],
    }


def slide_presets(labels, scores) -> dict[str, float | None]:
    """{"0.5", "youden", "sensitivity≥0.95"} thresholds of slide `scores` (None where the labels cannot
    define one; all but 0.5 None without labelled slides)."""
    from core.evaluate.metrics import sensitivity_preset_name, threshold_presets

    if not len(labels):  # threshold_presets refuses empty labels
        return {"0.5": DEFAULT_THRESHOLD, "youden": None, sensitivity_preset_name(0.95): None}
    return threshold_presets(labels, scores, target_sensitivity=0.95)


def labelled_scores(rows: list[dict], score_key: str = "score") -> tuple[list[int], list[float]]:
    """(labels, scores) of the scored rows that carry a label."""
    picked = [row for row in rows if row.get("status") in SCORED_STATUSES and row.get("label") in (0, 1)]
    return [row["label"] for row in picked], [float(row[score_key]) for row in picked]
