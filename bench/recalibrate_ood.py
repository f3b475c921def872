"""Re-take the bundled baseline's out-of-distribution threshold on more slides, and measure it on
slides that took no part (issue 19 item 2: every flag but `background` at most 1 % of real H&E).

The class means and covariance stay as bench/fit_ood_baseline.py fitted them; only the threshold moves.
Distances are computed exactly as scoring does (the model's stain normaliser, then one forward pass
through core.model.features.compiled_scores) on:
  - calibration: valA (half of the PCam-valid slides), the Kaggle TIFFs (data/sample among them);
  - report: valB (the other half of PCam-valid), never used to choose anything.
For each candidate percentile of the calibration distances it prints the rate on valB; with --write
PERCENTILE it stores that threshold in models/baseline.keras (core.model.ood.write_ood_stats: the
weights are copied unchanged).

Usage: /work/main/.venv/bin/python bench/recalibrate_ood.py SPLIT_DIR [--write 99.7]
       (SPLIT_DIR from bench/unseen_slide_split.py)
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
from common import KAGGLE_SAMPLE, PROJECT_DIR, log, parser

from core.data.dataset import open_dataset
from core.data.normalise import normaliser_of
from core.data.stream import read_dataset
from core.model import ood
from core.model.features import compiled_scores
from core.model.io import load_model

BASELINE = PROJECT_DIR / "models" / "baseline.keras"
CANDIDATES = (99.0, 99.5, 99.7, 99.8, 99.9)


def distances(model, stats: ood.OODStats, path: Path) -> np.ndarray:
    """The Mahalanobis distance of every readable patch of the dataset at `path`, as scoring computes it."""
    forward, normaliser, found = compiled_scores(model), normaliser_of(model), []
    with closing(read_dataset(open_dataset(path), 256, skipped={})) as batches:
        for pixels, _, _ in batches:
            _, features = forward(normaliser.transform(pixels).astype(np.float32))
            found.append(stats.distances(features.numpy()))
    return np.concatenate(found)


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("split", type=Path, help="the folder bench/unseen_slide_split.py wrote")
    arguments.add_argument("--write", type=float, default=None, help="store this percentile's threshold")
    args = arguments.parse_args()
    model = load_model(BASELINE)
    stats = ood.model_ood_stats(model)
    sets = {"valA": args.split / "valA", "kaggle": KAGGLE_SAMPLE, "valB": args.split / "valB"}
    found = {name: distances(model, stats, path) for name, path in sets.items()}
    calibration = np.concatenate([found["valA"], found["kaggle"]])
    log(
        f"stored threshold {stats.threshold:.3f} ({stats.percentile:g}th percentile, n {stats.n_calibration})"
    )
    for name, values in found.items():
        log(f"  at the stored threshold: {name} {np.mean(values > stats.threshold):.2%} of {len(values):,}")
    print("| percentile of valA + Kaggle TIFFs | threshold | valA | Kaggle TIFFs | valB (held out) |")
    print("|---|---|---|---|---|")
    for percentile in CANDIDATES:
        threshold = float(np.percentile(calibration, percentile))
        rates = [f"{np.mean(found[name] > threshold):.2%}" for name in ("valA", "kaggle", "valB")]
        print(f"| {percentile:g} | {threshold:.3f} | " + " | ".join(rates) + " |")
    if args.write is not None:
        new = ood.OODStats(
            means=stats.means,
            precision=stats.precision,
            threshold=float(np.percentile(calibration, args.write)),
            percentile=args.write,
            n_fit=stats.n_fit,
            n_calibration=len(calibration),
            shrinkage=stats.shrinkage,
        )
        ood.write_ood_stats(BASELINE, new)
        log(f"wrote threshold {new.threshold:.3f} ({args.write:g}th percentile) into {BASELINE}")


if __name__ == "__main__":
    main()
