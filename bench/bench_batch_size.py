"""The scoring batch size (core.constants.SCORING_BATCH_SIZE): patches per forward pass against speed.

Figures (patches/s of wall time and patches per CPU second of the process, which a busy shared machine
disturbs far less; median of --repeats runs; the sizes alternate their order from run to run):
  predict                 predict_dataset, probabilities alone (`python -m core predict`)
  predict + quality       predict_dataset(quality=True): the gate and the OOD verdict (a page's job)
  TTA + quality           predict_dataset(tta=True, quality=True) on the first --tta-patches patches
  heatmap                 a region image of the same patches, scoring phase (core.region.heatmap.score)
on the PCam-valid JPEGs (slides no model here saw) with models/baseline.keras, at each --sizes.
Every run also checks that each size gives the same probabilities (to float32 rounding).

Usage: /work/main/.venv/bin/python bench/bench_batch_size.py [--repeats 3] [--sizes 32,64,128,256]
"""

from __future__ import annotations

import os
import time

import numpy as np
from bench_scoring import pcam_valid, region_image
from common import PROJECT_DIR, SCRATCH, log, median, parser, report, spread, table, timed


def passes(model, dataset, tta_dataset, plan) -> dict:
    """{name: (patches, run(batch_size) -> probabilities)} of the four passes."""
    from core.evaluate.predict import predict_dataset
    from core.region.heatmap import score

    return {
        "predict": (len(dataset), lambda size: predict_dataset(model, dataset, batch_size=size)["prob"]),
        "predict + quality": (
            len(dataset),
            lambda size: predict_dataset(model, dataset, batch_size=size, quality=True)["prob"],
        ),
        "TTA + quality": (
            len(tta_dataset),
            lambda size: predict_dataset(model, tta_dataset, batch_size=size, tta=True, quality=True)["prob"],
        ),
        "heatmap": (int(plan.tissue.sum()), lambda size: score(model, plan, batch_size=size)[0]),
    }


def measure(runs: dict, sizes: list[int], repeats: int) -> dict:
    """{(pass, size, 'wall'|'cpu'): [patches per second, one per run]}."""
    rates: dict[tuple[str, int, str], list[float]] = {}
    for repeat in range(repeats):
        order = sizes if repeat % 2 == 0 else sizes[::-1]
        for name, (n, run) in runs.items():
            first = None
            for size in order:
                cpu = time.process_time()
                seconds, probs = timed(lambda run=run, size=size: run(size))
                cpu = time.process_time() - cpu
                rates.setdefault((name, size, "wall"), []).append(n / seconds)
                rates.setdefault((name, size, "cpu"), []).append(n / cpu)
                log(
                    f"run {repeat + 1} {name} batch {size}: {n / seconds:,.1f} patches/s, {n / cpu:,.1f} per CPU s"
                )
                first = np.asarray(probs) if first is None else first
                np.testing.assert_allclose(
                    np.asarray(probs), first, atol=1e-5
                )  # the batch never changes a score
    return rates


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,64,128,256", help="batch sizes, comma-separated")
    p.add_argument("--tta-patches", type=int, default=512, help="patches of the TTA pass (8 views each)")
    args = p.parse_args()
    os.environ["PATCHLENS_HOME"] = str(SCRATCH / "batch-size-workspace")
    from bench_predict import load_bench_model

    from core.evaluate.predict import predict_dataset
    from core.region.heatmap import prepare

    sizes = [int(size) for size in args.sizes.split(",")]
    model, model_name = load_bench_model()
    dataset = pcam_valid(200 if args.quick else None)
    tta_dataset = pcam_valid(64 if args.quick else args.tta_patches)
    plan = prepare(region_image(dataset))
    warm = pcam_valid(32)  # traces every forward pass once
    predict_dataset(model, warm), predict_dataset(model, warm, quality=True, tta=True)
    runs = passes(model, dataset, tta_dataset, plan)
    rates = measure(runs, sizes, args.repeats)
    plan.image.close()
    base = max(sizes)
    rows = []
    for name, (n, _) in runs.items():
        for unit in ("wall", "cpu"):
            cells = [
                f"{median(rates[(name, size, unit)]):,.1f} ({spread(rates[(name, size, unit)])})"
                for size in sizes
            ]
            best = max(sizes, key=lambda size: median(rates[(name, size, unit)]))
            ratio = median(rates[(name, best, unit)]) / median(rates[(name, base, unit)])
            rows.append(
                [name, n, "patches/s" if unit == "wall" else "per CPU s", *cells, f"{best} ({ratio:.3f})"]
            )
    headers = ["pass", "patches", "rate", *[f"batch {size}" for size in sizes], f"fastest (÷ batch {base})"]
    notes = [
        f"model: {model_name}; data: {len(dataset):,} pcamvalid_* JPEGs of ../shared/data/pcam-jpeg; TTA on "
        f"the first {len(tta_dataset):,}; heatmap: a tile PNG of the same patches, scoring phase only.",
        "Each run takes every size once, the order reversed from one run to the next; each size gave the same "
        "probabilities as the first (within 1e-5).",
    ]
    report("The scoring batch size (bench/bench_batch_size.py)", table(headers, rows), args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
