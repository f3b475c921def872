"""Label-issue ranking time: core.diagnose.label_issues.rank_label_issues on synthetic probabilities.

Figures (median of --repeats runs): CPU seconds of the process (time.process_time, so the other jobs
of a shared machine do not count) to rank 1,000 and 100,000 labelled patches (cleanlab's
label-quality scores + find_label_issues + the sort), and, as a reference measured in the same run,
cleanlab's two calls alone on the same arrays. The probabilities are synthetic (a noisy classifier
with 5 % flipped labels, seed 0): the ranking never looks at pixels, so only their number matters.
The model's predictions or the k-fold training that produce real probabilities are not included.

Usage: /work/main/.venv/bin/python bench/bench_label_issues.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import time

import numpy as np
from common import log, median, parser, report, spread, table

SIZES = (1_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


def cpu_seconds(function) -> float:
    """CPU seconds of this process for one call: other jobs on the shared machine do not count."""
    start = time.process_time()
    function()
    return time.process_time() - start


def synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    probs = np.clip(0.75 * truth + rng.normal(0.12, 0.2, n), 0.0, 1.0)
    labels = np.where(rng.random(n) < 0.05, 1 - truth, truth)
    return [f"patch-{k:06d}" for k in range(n)], labels, probs


def cleanlab_only(labels: np.ndarray, probs: np.ndarray) -> None:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    pred_probs = np.column_stack([1 - probs, probs])
    get_label_quality_scores(labels, pred_probs)
    find_label_issues(labels, pred_probs, n_jobs=1)


def measure(n: int, repeats: int) -> list[object]:
    """One table row: rank_label_issues and cleanlab alone on n synthetic patches, interleaved."""
    from core.diagnose.label_issues import rank_label_issues

    ids, labels, probs = synthetic(n)
    flagged = int(rank_label_issues(ids, labels, probs)["flagged"].sum())  # also warms the imports
    ours, reference = [], []
    for repeat in range(repeats):  # interleaved, so a noisy neighbour slows both alike
        ours.append(cpu_seconds(lambda: rank_label_issues(ids, labels, probs)))
        reference.append(cpu_seconds(lambda: cleanlab_only(labels, probs)))
        log(f"n={n:,} run {repeat + 1}: {ours[-1]:.3f} s (cleanlab alone {reference[-1]:.3f} s)")
    return [
        n,
        f"{median(ours):.3f} ({spread(ours)})",
        f"{median(reference):.3f} ({spread(reference)})",
        median(ours) / median(reference),
        flagged,
    ]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    rows = [measure(n, args.repeats) for n in (QUICK_SIZES if args.quick else SIZES)]
    body = table(
        [
            "labelled patches",
            "rank_label_issues CPU s (min–max)",
            "cleanlab calls alone CPU s",
            "÷ cleanlab",
            "flagged",
        ],
        rows,
    )
    report(
        "Label-issue ranking time (bench/bench_label_issues.py)",
        body,
        args,
        notes=[
            "synthetic probabilities: a noisy classifier, 5 % of labels flipped, seed 0; cleanlab 2.9.0, n_jobs=1.",
            "time = CPU seconds of the process (time.process_time); the machine was shared with other jobs.",
            "the sort is np.lexsort (score, then id): pandas' two-key sort_values took about as long as "
            "cleanlab itself at 100,000 patches.",
            "rank_label_issues = input checks + cleanlab's label-quality scores + find_label_issues + the sort "
            "by score; it excludes computing the probabilities (a prediction pass, or K trainings for --folds).",
        ],
    )


if __name__ == "__main__":
    main()
