"""Slide-level benchmark: `core slides` on the cohort bench/build_cohort.py builds.

Measures, in one run: each aggregation's slide-level AUC (with its bootstrap interval) and its
sensitivity per lesion kind at the threshold, the slide threshold by Youden's J (on all slides and
leave-one-out) with the specificity and sensitivity at it, the tile AUC and Dice against the annotations, the
tiles/s of one worker end to end, and the cached re-run's wall time. Prints markdown for BENCHMARKS.md.

    python bench/build_cohort.py --out /tmp/patchlens-bench/cohort
    python bench/bench_slides.py --cohort /tmp/patchlens-bench/cohort [--model models/baseline.keras]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PROJECT_DIR, SCRATCH  # noqa: E402


def kinds(labels_csv: Path) -> dict[str, str]:
    with open(labels_csv, newline="") as handle:
        return {row["slide"]: row["kind"] for row in csv.DictReader(handle)}


def aggregation_table(out: Path, kind_of: dict[str, str], threshold: float) -> list[str]:
    import pandas as pd

    from core.slides.aggregate import AGGREGATIONS
    from core.slides.metrics import slide_metrics

    frame = pd.read_csv(out / "slides.csv")
    frame = frame[frame["status"].isin(["done", "cached"])]
    frame["kind"] = frame["slide"].map(kind_of)
    lines = ["| aggregation | slide AUC [95 % CI] | specificity | sensitivity ITC | micro | macro |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name in AGGREGATIONS:
        scores = frame[f"score_{name}"]
        metrics = slide_metrics(frame["label"], scores, threshold)
        low, high = metrics["auc_ci"]
        called = scores >= threshold
        rate = {kind: called[frame["kind"] == kind].mean() for kind in ("negative", "itc", "micro", "macro")}
        lines.append(f"| {name} | {metrics['auc']:.3f} [{low:.3f}, {high:.3f}] | {1 - rate['negative']:.2f} | "
                     f"{rate['itc']:.2f} | {rate['micro']:.2f} | {rate['macro']:.2f} |")  # fmt: skip
    return lines


def threshold_table(out: Path) -> list[str]:
    """Per aggregation: the slide threshold chosen by Youden's J on all slides (in-sample: optimistic)
    and leave-one-out (each slide called at the Youden threshold of the other slides: an honest estimate
    of choosing the slide threshold on other slides), with the specificity and sensitivity at each."""
    import numpy as np
    import pandas as pd

    from core.slides.aggregate import AGGREGATIONS
    from core.slides.metrics import slide_presets

    frame = pd.read_csv(out / "slides.csv")
    frame = frame[frame["status"].isin(["done", "cached"])]
    labels = frame["label"].to_numpy(dtype=int)
    lines = ["| aggregation | Youden t (all slides) | spec / sens at it | leave-one-out spec / sens |",
             "|---|---|---|---|"]  # fmt: skip
    for name in AGGREGATIONS:
        scores = frame[f"score_{name}"].to_numpy(dtype=float)
        youden = slide_presets(labels, scores)["youden"]
        others = [
            slide_presets(np.delete(labels, i), np.delete(scores, i))["youden"] for i in range(len(scores))
        ]
        loo = scores >= np.array(others)

        def rates(called):
            return f"{np.mean(~called[labels == 0]):.2f} / {np.mean(called[labels == 1]):.2f}"

        lines.append(f"| {name} | {youden:.3f} | {rates(scores >= youden)} | {rates(loo)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=SCRATCH / "cohort")
    parser.add_argument("--model", type=Path, default=PROJECT_DIR / "models" / "baseline.keras")
    parser.add_argument("--out", type=Path, default=SCRATCH / "cohort-out")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    from core.slides.cohort import run_cohort
    from core.slides.task import SlideOptions

    def once() -> tuple[dict, float]:
        started = time.monotonic()
        summary = run_cohort(args.model, [args.cohort / "slides"], args.out, labels_path=args.cohort / "labels.csv",
                             annotations_dir=args.cohort / "annotations", options=SlideOptions(threshold=args.threshold))  # fmt: skip
        return summary, time.monotonic() - started

    first, first_s = once()
    again, again_s = once()
    import pandas as pd

    frame = pd.read_csv(args.out / "slides.csv")
    tiles, busy = int(frame["n_scored"].sum()), float(frame["seconds"].sum())
    print("\n".join(aggregation_table(args.out, kinds(args.cohort / "labels.csv"), args.threshold)))
    print(
        "\nSlide threshold chosen on the slide ROC (Slides page presets, `core slides --slide-threshold`):\n"
    )
    print("\n".join(threshold_table(args.out)))
    print(f"\n- {first['n_slides']} slides, {tiles:,} tiles scored; first run {first_s:.1f} s wall "
          f"({tiles / first_s:.1f} tiles/s end to end incl. model load; {tiles / busy:.1f} tiles/s inside the slide tasks); "
          f"re-run {again_s:.1f} s ({again['n_cached']} cached).")  # fmt: skip
    print(f"- tile AUC {first['tile_auc']:.3f} over {first['tile_n']:,} tiles ({first['tile_positive']} tumour), "
          f"sensitivity {first['tile_sensitivity']:.3f}, specificity {first['tile_specificity']:.3f}, Dice {first['dice']:.3f}.")  # fmt: skip
    per_slide = busy / len(frame)
    print(f"- per slide ({tiles // len(frame)} tiles): {per_slide:.1f} s on one worker; 1,000 such slides ≈ "
          f"{1000 * per_slide / 3600:.1f} worker-hours, ≈ {1000 * per_slide / 3600 / 8:.2f} h on 8 workers.")  # fmt: skip


if __name__ == "__main__":
    main()
