"""The Keras Applications backbones next to patchnet on this CPU, at 96x96, weights none (no training):
parameters, inference speed and the cost of one training step (batch 64, Adam, binary cross-entropy).

speed is reported twice: patches per wall-clock second and patches per CPU second of this process
(time.process_time, all threads), so other jobs on a shared machine count in the first only.
The first training step (graph tracing included) is timed apart from the steady steps.

Usage: python bench/bench_backbones.py [--arch NAME ...] [--patches 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.images import decode_patch  # noqa: E402
from core.settings import SAMPLE_DATASET  # noqa: E402

DEFAULT_ARCHES = ["patchnet", "mobilenetv3small", "efficientnetv2b0", "resnet50v2"]
BATCH = 64


def real_patches(n: int) -> tuple[np.ndarray, np.ndarray]:
    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:n]
    images = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{r['id']}.tif") for r in rows])
    return images.astype("float32"), np.array([float(r["label"]) for r in rows], dtype="float32")


def timed(action) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, images: np.ndarray, labels: np.ndarray, steps: int) -> dict:
    import keras

    from core.model.architectures import build_model

    start = time.perf_counter()
    model = build_model(name, seed=0)
    build_s = time.perf_counter() - start
    model.predict(images[:BATCH], batch_size=BATCH, verbose=0)  # warm-up: traced once
    wall, cpu = timed(lambda: model.predict(images, batch_size=BATCH, verbose=0))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    x, y = images[:BATCH], labels[:BATCH]
    first_wall, _ = timed(lambda: model.train_on_batch(x, y))
    step_wall, step_cpu = timed(lambda: [model.train_on_batch(x, y) for _ in range(steps)])
    return {
        "arch": name,
        "params_M": model.count_params() / 1e6,
        "build_s": build_s,
        "infer_patches_per_s": len(images) / wall,
        "infer_patches_per_cpu_s": len(images) / cpu,
        "first_step_s": first_wall,
        "step_s": step_wall / steps,
        "step_cpu_s": step_cpu / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=DEFAULT_ARCHES)
    parser.add_argument("--patches", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    images, labels = real_patches(args.patches)
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; batch {BATCH}; 96x96 real patches"
    )
    print("| arch | parameters | inference patches/s (wall) | patches/CPU-s | 1st train step (tracing) | "
          "train step, batch 64 (wall) | CPU-s per step |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in args.arch:
        r = bench(name, images, labels, args.steps)
        print(
            f"| {r['arch']} | {r['params_M']:.2f} M | {r['infer_patches_per_s']:.0f} | "
            f"{r['infer_patches_per_cpu_s']:.0f} | {r['first_step_s']:.1f} s | {r['step_s']:.2f} s | "
            f"{r['step_cpu_s']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
