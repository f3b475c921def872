"""Feature map speed: features + 2-D map of the 1,000-patch sample from cold, `embed` at 10,000 and
100,000 patches (peak memory), and the latency of a neighbour query.

1. Bundled sample (1,000 Kaggle TIFFs), model loaded but never run (the feature function is traced
   in the timed pass) and an empty cache: the streamed feature pass (cached_features, which also
   writes the cache), PCA of all 1,000, t-SNE of all 1,000, and a second cached_features (a hit).
2. `python -m core embed MODEL PCAM --out emb.npz --no-cache` under /usr/bin/time -v on PCam-HDF5
   folders of 10,000 and 100,000 patches repeating the real Kaggle patches (bench/bigdata.py):
   peak RSS and wall time. The N x D float32 features are the one thing that must grow with N.
3. NeighbourIndex (scikit-learn NearestNeighbors) over the 1,000 and the 100,000 features:
   build time and the median latency of by_id(k=8) over QUERIES random patches.

Usage: /work/venv/bin/python bench/bench_embed.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bigdata import pcam_folder
from common import (
    BUNDLED_SAMPLE,
    PROJECT_DIR,
    SCRATCH,
    log,
    median,
    parser,
    peak_memory_run,
    percentile,
    report,
    spread,
    table,
)

MODEL = PROJECT_DIR / "models" / "baseline.keras"
QUERIES = 200


def cold_sample(repeats: int) -> list[list[object]]:
    from core.data.dataset import open_dataset
    from core.diagnose.features import cached_features
    from core.diagnose.projection import pca_xy, tsne_xy
    from core.model.io import load_model

    dataset = open_dataset(BUNDLED_SAMPLE)
    times: dict[str, list[float]] = {"features": [], "pca": [], "tsne": [], "hit": []}
    for run in range(repeats):
        model = load_model(MODEL)  # loaded, never run: the timed pass traces the feature function
        with tempfile.TemporaryDirectory(dir=SCRATCH) as cache:
            start = time.perf_counter()
            found = cached_features(MODEL, dataset, cache_dir=cache, model=model)
            times["features"].append(time.perf_counter() - start)
            start = time.perf_counter()
            pca_xy(found.features)
            times["pca"].append(time.perf_counter() - start)
            start = time.perf_counter()
            tsne_xy(found.features)
            times["tsne"].append(time.perf_counter() - start)
            start = time.perf_counter()
            cached_features(MODEL, dataset, cache_dir=cache)
            times["hit"].append(time.perf_counter() - start)
        log(f"sample run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    both = [f + p for f, p in zip(times["features"], times["pca"], strict=True)]
    rows = [
        ["features (streamed pass, cache written)", *_cells(times["features"])],
        ["PCA of 1,000 x 256", *_cells(times["pca"])],
        ["**features + PCA map, from cold**", *_cells(both)],
        ["t-SNE of 1,000 x 256", *_cells(times["tsne"])],
        ["features again (cache hit)", *_cells(times["hit"])],
    ]
    return rows


def _cells(values: list[float]) -> list[object]:
    return [f"{median(values):.2f} ({spread(values)})"]


def embed_run(n: int, out: Path) -> dict:
    folder = pcam_folder(n)
    command = [
        sys.executable,
        "-m",
        "core",
        "embed",
        str(MODEL),
        str(folder),
        "--out",
        str(out),
        "--no-cache",
    ]
    measured = peak_memory_run(command)
    return {"n": n, "peak_mb": measured["rss_mb"], "wall": measured["wall_s"]}


def neighbour_latency(features: np.ndarray) -> tuple[float, float, float]:
    """(index build s, median ms, p90 ms) of by_id(k=8) over QUERIES random patches."""
    from core.diagnose.features import FeatureSet
    from core.diagnose.neighbours import NeighbourIndex

    n = len(features)
    found = FeatureSet([str(i) for i in range(n)], features, np.zeros(n, np.float32), np.zeros(n), ["ok"] * n)
    start = time.perf_counter()
    index = NeighbourIndex(found)
    build = time.perf_counter() - start
    rng = np.random.default_rng(0)
    latencies = []
    for row in rng.choice(n, size=QUERIES, replace=False):
        start = time.perf_counter()
        index.by_id(str(row), 8)
        latencies.append((time.perf_counter() - start) * 1000)
    return build, median(latencies), percentile(latencies, 0.9)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    sizes = (2_000, 4_000) if args.quick else (10_000, 100_000)
    sample_rows = cold_sample(1 if args.quick else args.repeats)

    runs = []
    for n in sizes:
        out = SCRATCH / f"emb-{n}.npz"
        log(f"embed {n:,} patches")
        runs.append(embed_run(n, out))
        log(f"embed {n:,}: peak {runs[-1]['peak_mb']:.0f} MB, {runs[-1]['wall']:.0f} s")
    small, large = runs
    with np.load(SCRATCH / f"emb-{sizes[-1]}.npz") as stored:
        big = stored["features"]
    with np.load(SCRATCH / f"emb-{sizes[0]}.npz") as stored:
        width = stored["features"].shape[1]
    feature_mb = {r["n"]: r["n"] * width * 4 / 2**20 for r in runs}

    neighbour_rows = []
    for n in (1_000, len(big)):
        build, mid, p90 = neighbour_latency(big[:n])
        neighbour_rows.append([f"{n:,}", f"{build:.2f}", f"{mid:.2f}", f"{p90:.2f}"])

    body = "\n\n".join(
        [
            "1,000-patch bundled sample, model loaded, empty cache (seconds, median (min–max)):\n\n"
            + table(["step", "seconds"], sample_rows),
            f"`python -m core embed baseline PCAM --no-cache` ({len(runs)} sizes, one run each):\n\n"
            + table(
                [
                    "patches",
                    "peak RSS MB",
                    "of which features (N x D x 4 B)",
                    "RSS minus features",
                    "wall s",
                    "patches/s",
                ],  # fmt: skip
                [
                    [
                        r["n"],
                        f"{r['peak_mb']:,.0f}",
                        f"{feature_mb[r['n']]:,.0f}",
                        f"{r['peak_mb'] - feature_mb[r['n']]:,.0f}",
                        f"{r['wall']:.0f}",
                        f"{r['n'] / r['wall']:,.0f}",
                    ]
                    for r in runs
                ],
            )
            + f"\n\nratio of peak RSS {large['n']:,}/{small['n']:,}: {large['peak_mb'] / small['peak_mb']:.2f}; "
            f"without the feature matrix: "
            f"{(large['peak_mb'] - feature_mb[large['n']]) / (small['peak_mb'] - feature_mb[small['n']]):.2f}",
            f"Neighbour queries (`NeighbourIndex.by_id`, k = 8, {QUERIES} random patches):\n\n"
            + table(["patches indexed", "index build s", "median ms", "p90 ms"], neighbour_rows),
        ]
    )
    notes = [
        "model: models/baseline.keras (patchnet, D = 256 features); data: PCam-HDF5 folders repeating the "
        "3,329 real Kaggle patches (bench/bigdata.py), read directly (no prepare).",
        "embed wall time includes the Python/TensorFlow start-up (~10 s), the model load and PCA of all N.",
        "the machine is shared with other jobs: figures are medians, the spread is shown.",
    ]
    report(
        "Feature map: features, projection and neighbour queries (bench/bench_embed.py)", body, args, notes
    )


if __name__ == "__main__":
    main()
