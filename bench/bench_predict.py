"""Prediction throughput and latency: core.evaluate.predict vs plain Keras, and Grad-CAM latency.

Figures (median of --repeats runs, variants interleaved):
  throughput (patches/s, batch 256) on data/sample (1,000 Kaggle TIFFs):
    predict_dataset (reads + decodes in a thread while the compiled forward pass runs)
    reference: decode everything, then model.predict(x, batch_size=256)   (end to end)
    and model.predict on the already decoded array                          (compute only)
  single-patch latency (ms, median and p90 of LATENCY_CALLS calls a run):
    predict_patches(model, patch) vs model.predict(patch[None]) vs model(patch[None]) (direct call)
  Grad-CAM and Grad-CAM++ latency for one patch (core.evaluate.explain.Explainer), steady state, plus the
  first call of each (visualizer build + trace; one per process, so one figure).

Uses models/baseline.keras when it exists, else an untrained patchnet (the table says which).

Usage: /work/venv/bin/python bench/bench_predict.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import os
import time

import numpy as np
from common import BUNDLED_SAMPLE, PROJECT_DIR, log, median, parser, percentile, report, spread, table, timed

BATCH = 256
LATENCY_CALLS = 50
GRADCAM_CALLS = 20


def load_bench_model():
    from core.model.architectures import build_model
    from core.model.io import load_model
    from core.settings import BASELINE_MODEL

    if BASELINE_MODEL.exists():
        return load_model(BASELINE_MODEL), f"models/baseline.keras ({BASELINE_MODEL.stat().st_size:,} bytes)"
    return build_model("patchnet", seed=0), "untrained patchnet (models/baseline.keras absent)"


def latencies_ms(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(1000 * (time.perf_counter() - start))
    return out


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    from core.data.dataset import open_dataset
    from core.evaluate.explain import Explainer
    from core.evaluate.predict import predict_dataset, predict_patches

    model, model_name = load_bench_model()
    dataset = open_dataset(BUNDLED_SAMPLE)
    if args.quick:
        dataset._keep(np.arange(len(dataset)) < 300)  # bench-only: a smaller slice for the smoke test
    n = len(dataset)
    calls = 10 if args.quick else LATENCY_CALLS
    cam_calls = 3 if args.quick else GRADCAM_CALLS
    everything = list(range(n))
    patch = dataset.read_patch(0)
    one = patch[None].astype(np.float32)

    # Warm-up: traces, first-call set-up, page cache.
    predict_dataset(model, dataset, batch_size=BATCH)
    model.predict(dataset.read_batch(everything).astype(np.float32), batch_size=BATCH, verbose=0)
    predict_patches(model, patch), model.predict(one, verbose=0), model(one, training=False)
    explainer = Explainer(model)
    first_call = {}
    for method in ("gradcam", "gradcam++"):
        first_call[method] = 1000 * timed(lambda method=method: explainer.explain(patch, method))[0]
        log(f"{method} first call: {first_call[method]:.0f} ms")

    rates: dict[str, list[float]] = {}
    lat: dict[str, list[list[float]]] = {}

    def add_rate(key, value):
        rates.setdefault(key, []).append(value)
        log(f"{key}: {value:,.1f}")

    for run in range(args.repeats):
        log(f"run {run + 1}/{args.repeats}")
        seconds, frame = timed(lambda: predict_dataset(model, dataset, batch_size=BATCH))
        assert len(frame) == n
        add_rate("predict_dataset", n / seconds)
        decode_s, pixels = timed(lambda: dataset.read_batch(everything).astype(np.float32))
        predict_s, _ = timed(lambda pixels=pixels: model.predict(pixels, batch_size=BATCH, verbose=0))
        add_rate("decode+model.predict", n / (decode_s + predict_s))
        add_rate("model.predict only", n / predict_s)
        for key, call in (
            ("predict_patches", lambda: predict_patches(model, patch)),
            ("model.predict", lambda: model.predict(one, verbose=0)),
            ("model(x) direct", lambda: model(one, training=False)),
            ("gradcam", lambda: explainer.explain(patch, "gradcam")),
            ("gradcam++", lambda: explainer.explain(patch, "gradcam++")),
        ):
            lat.setdefault(key, []).append(latencies_ms(call, cam_calls if "grad" in key else calls))
            log(f"{key}: median {np.median(lat[key][-1]):.2f} ms")

    m = {key: median(values) for key, values in rates.items()}
    body = table(
        ["throughput, batch 256", "patches", "patches/s (min–max)", "÷ decode+model.predict", "÷ model.predict only"],
        [
            [name, n, f"{m[name]:,.0f} ({spread(rates[name])})", f"{m[name] / m['decode+model.predict']:.2f}",
             f"{m[name] / m['model.predict only']:.2f}"]
            for name in ("predict_dataset", "decode+model.predict", "model.predict only")
        ],
    )  # fmt: skip
    med = {key: median([np.median(r) for r in runs]) for key, runs in lat.items()}
    p90 = {key: median([percentile(r, 0.9) for r in runs]) for key, runs in lat.items()}
    ref = med["predict_patches"]
    rows = []
    for key in ("predict_patches", "model.predict", "model(x) direct", "gradcam", "gradcam++"):
        runs_median = [float(np.median(r)) for r in lat[key]]
        rows.append(
            [key, f"{med[key]:.2f} ({spread(runs_median)})", f"{p90[key]:.2f}",
             f"{med[key] / ref:.2f}", f"{first_call[key]:.0f}" if key in first_call else "–"]
        )  # fmt: skip
    body += "\n\n" + table(
        [
            "one patch",
            "median ms (min–max of run medians)",
            "p90 ms",
            "÷ predict_patches median",
            "first call ms",
        ],
        rows,
    )
    speedup = med["model.predict"] / med["predict_patches"]
    notes = [
        f"model: {model_name}; data: {BUNDLED_SAMPLE.relative_to(PROJECT_DIR)} ({n:,} Kaggle TIFFs, decoded by "
        "decode_patch's raw-TIFF fast path); pages warm in the page cache.",
        f"single patch: predict_patches is {speedup:.1f}× faster than model.predict (median latency, same run).",
        f"latency: {calls} calls a run for the forward passes, {cam_calls} for Grad-CAM; 'first call' = the first "
        "explain() of the process for that method (clone of the model + trace), measured once.",
        "decode+model.predict = decode every patch into one array, then model.predict: memory grows with the "
        "dataset, unlike predict_dataset (two batches in flight).",
    ]
    report("Prediction throughput and latency (bench/bench_predict.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
