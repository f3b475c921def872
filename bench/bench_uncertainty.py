"""Uncertainty per prediction on unseen slides: the cut chosen on valA, the figures measured on valB.

For a model (default the bundled one) the 8-view (TTA) predictions of valA and valB of
bench/unseen_slide_split.py, each with its spread (core.evaluate.uncertainty), then:

- on valA only, the cut: the smallest spread at which the predictions at or above it are right at
  most `--target` of the time (default 0.8: at least one in five of the patches called uncertain is
  wrong), and what each candidate cut would flag;
- on valB, which takes no part: accuracy of the patches called certain against the rest, the
  risk at several coverages, and the area under the risk-coverage curve for the spread against the
  plain confidence of the 8-view mean (|p - 0.5|), so the choice of measure is made on numbers.

    python bench/bench_uncertainty.py /tmp/unseen [--model models/baseline.keras] [--json OUT]

A model trained on every shared patch (bench/bundled_split.py) has seen valA and valB: choose on its
selection set and measure on data/sample instead, `--choose /tmp/bundled/kaggle-val --measure data/sample`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.evaluate.uncertainty import (  # noqa: E402
    SPREAD_COLUMN,
    certain_vs_rest,
    risk_at_coverage,
    risk_coverage,
)

COVERAGES = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
CANDIDATE_CUTS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10)


def tta_predictions(model, folder: Path):
    """(labels, probs, spread) of a labelled folder, with the 8 views."""
    from core.data.dataset import open_dataset
    from core.evaluate.predict import predict_dataset

    frame = predict_dataset(model, open_dataset(folder), tta=True)
    return frame["label"].to_numpy(), frame["prob"].to_numpy(), frame[SPREAD_COLUMN].to_numpy()


def chosen_cut(labels, probs, spread, target: float) -> float:
    """The smallest candidate spread whose flagged predictions are right at most `target` of the time."""
    for cut in np.round(np.arange(0.01, 0.301, 0.005), 3):
        summary = certain_vs_rest(labels, probs, spread, cut=float(cut))
        if summary["accuracy_uncertain"] is not None and summary["accuracy_uncertain"] <= target:
            return float(cut)
    raise SystemExit("no cut reaches the target on valA")


def aurc(labels, probs, score) -> float:
    """Area under the risk-coverage curve when abstaining on the largest `score` first."""
    return float(np.trapezoid(*risk_coverage(labels, probs, score)[["risk", "coverage"]].to_numpy().T))


def describe(labels, probs, spread, cut: float) -> dict:
    """Certain vs the rest at `cut`, risk at COVERAGES, and the AURC of spread vs confidence."""
    curve = risk_coverage(labels, probs, spread)
    return {
        "at_cut": certain_vs_rest(labels, probs, spread, cut=cut),
        "risk_at_coverage": {str(c): risk_at_coverage(curve, c) for c in COVERAGES},
        "aurc_spread": aurc(labels, probs, spread),
        "aurc_confidence": aurc(labels, probs, -np.abs(probs - 0.5)),
        "spread_quantiles": {str(q): float(np.quantile(spread, q)) for q in (0.5, 0.8, 0.9, 0.95)},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("split", type=Path)
    parser.add_argument("--model", default="models/baseline.keras")
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--choose", type=Path, default=None, help="choose the cut here (default SPLIT/valA)")
    parser.add_argument("--measure", type=Path, default=None, help="measure it here (default SPLIT/valB)")
    args = parser.parse_args(argv)
    from core.model.io import load_model

    model = load_model(args.model)
    val_a = tta_predictions(model, args.choose or args.split / "valA")
    cut = chosen_cut(*val_a, args.target)
    result = {
        "model": str(args.model),
        "cut": cut,
        "valA_candidates": {str(c): certain_vs_rest(*val_a, cut=c) for c in CANDIDATE_CUTS},
        "valA": describe(*val_a, cut),
        "valB": describe(*tta_predictions(model, args.measure or args.split / "valB"), cut),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
