"""Stain normalisation throughput: StainNormaliser.transform on batches of 256 real patches, against
torchstain's own per-patch loop, in CPU seconds of this process (the machine is shared, so wall time
says more about the neighbours than about the code) and in wall time.

Usage: python bench/bench_stain.py [--data ../shared/data/pcam-jpeg] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/pcam-jpeg")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from core.data.dataset import open_dataset
    from core.data.normalise import StainNormaliser, _library, _normalise_one

    dataset = open_dataset(args.data)
    rows = np.sort(np.random.default_rng(0).permutation(len(dataset))[:768]).tolist()
    patches, _, _ = dataset.read_tolerant(rows)
    fit, batch = patches[:512], patches[512:768]
    print(f"{len(batch)} patches a batch, {args.repeats} repeats, median shown")
    for method in ("macenko", "reinhard"):
        start = time.process_time()
        normaliser = StainNormaliser(method).fit(fit)
        print(f"{method}: fit on {len(fit)} candidates {time.process_time() - start:.2f} CPU s")
        library = _library(method, normaliser.params)

        def torchstain_loop(library=library, method=method):
            with threadpool_limits(1, user_api="blas"):
                for patch in batch:
                    _normalise_one(library, method, patch)

        for name, run in (
            ("transform", lambda n=normaliser: n.transform(batch)),
            ("torchstain loop", torchstain_loop),
        ):
            cpu, wall = [], []
            for _ in range(args.repeats):
                c, w = time.process_time(), time.perf_counter()
                run()
                cpu.append(time.process_time() - c)
                wall.append(time.perf_counter() - w)
            print(
                f"  {name:16s} {len(batch) / np.median(cpu):6.0f} patches per CPU s, "
                f"{len(batch) / np.median(wall):6.0f} patches/s wall"
            )


if __name__ == "__main__":
    main()
