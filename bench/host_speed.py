"""How fast this host is right now: the bundled model's forward pass over the 1,000 bundled patches.

The same code's timings on these shared 2-core hosts moved by up to 2x within one day (a fresh clone's
suite ran in 506 s in one hour and 975 s in another), so a wall-clock figure means little without the
host's speed beside it. This measures the one thing most figures here are made of — the model's
compiled forward pass on pixels already in memory (batches of 256, float32, no file reading) — three
times after one warm-up pass, and prints the median in seconds. Every benchmark's section in
BENCHMARKS.md carries it (bench/common.report runs this script right after the benchmark); run it by
hand before timing anything else:

    python bench/host_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

BATCH = 256
REPEATS = 3


def forward_seconds() -> float:
    """The median time of REPEATS forward passes of models/baseline.keras over data/sample."""
    import numpy as np

    from core.data.dataset import open_dataset
    from core.data.stream import dataset_chunks
    from core.evaluate.predict import compiled_predict
    from core.model.io import load_model

    model = load_model(PROJECT_DIR / "models" / "baseline.keras")
    sample = open_dataset(PROJECT_DIR / "data" / "sample")
    pixels = np.concatenate([chunk[0] for chunk in dataset_chunks(sample, BATCH)]).astype(np.float32)
    forward = compiled_predict(model)

    def once() -> float:
        start = time.perf_counter()
        for i in range(0, len(pixels), BATCH):
            forward(pixels[i : i + BATCH]).numpy()
        return time.perf_counter() - start

    once()  # the trace, and the first touch of every weight
    return statistics.median(once() for _ in range(REPEATS))


def main() -> None:
    print(f"{forward_seconds():.2f}")


if __name__ == "__main__":
    main()
