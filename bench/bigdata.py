"""Large datasets for the scaling benchmarks, built by repeating real patches (never synthetic pixels).

`pcam_folder(n)` writes a PCam-HDF5 layout folder (camelyonpatch_level_2_split_train_x.h5 with
x (n, 96, 96, 3) uint8, _y.h5 with y (n, 1, 1, 1) uint8) whose rows cycle through the 3,329 real
Kaggle patches; `cache_of(folder)` converts it with `python -m core prepare` into a PatchLens cache.
Both are built once under SCRATCH and reused (a `.complete` marker says a build finished).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from common import BUNDLED_SAMPLE, KAGGLE_SAMPLE, PROJECT_DIR, SCRATCH, log

WRITE_ROWS = 4096


def kaggle_cache() -> Path:
    """The HDF5 cache of the 3,329 real Kaggle TIFFs, written once by core.data.cache.prepare."""
    return _prepared_once(KAGGLE_SAMPLE, SCRATCH / "kaggle-sample-cache.h5")


def sample_cache() -> Path:
    """The cache of the bundled 1,000-patch sample (a small validation set for training runs)."""
    return _prepared_once(BUNDLED_SAMPLE, SCRATCH / "sample-cache.h5")


def _prepared_once(source: Path, path: Path) -> Path:
    """`path`, the cache core.data.cache.prepare writes of `source` unless it exists already."""
    from core.data.cache import prepare

    if not path.exists():
        SCRATCH.mkdir(parents=True, exist_ok=True)
        prepare(source, path, workers=1)
    return path


def pcam_folder(n: int) -> Path:
    """A PCam-HDF5 folder of n patches cycling through the real Kaggle patches."""
    import h5py

    folder = SCRATCH / f"pcam-{n}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(kaggle_cache(), "r") as source:
        pixels = source["x"][...]
        labels = source["y"][...].astype(np.uint8)
    log(f"writing {folder} ({n:,} patches, {n * pixels[0].nbytes / 1e9:.2f} GB)")
    with h5py.File(folder / "camelyonpatch_level_2_split_train_x.h5", "w") as handle:
        x = handle.create_dataset("x", shape=(n, 96, 96, 3), dtype=np.uint8)
        for start in range(0, n, WRITE_ROWS):
            rows = np.arange(start, min(start + WRITE_ROWS, n)) % len(pixels)
            x[start : start + len(rows)] = pixels[rows]
    with h5py.File(folder / "camelyonpatch_level_2_split_train_y.h5", "w") as handle:
        handle.create_dataset("y", data=labels[np.arange(n) % len(labels)].reshape(n, 1, 1, 1))
    (folder / ".complete").touch()
    return folder


def cache_of(folder: Path) -> Path:
    """The PatchLens cache of a PCam folder (made once by `python -m core prepare`)."""
    path = folder.with_name(folder.name + "-cache.h5")
    if not path.exists():
        command = [sys.executable, "-m", "core", "prepare", str(folder), "--out", str(path)]
        subprocess.run(command, cwd=PROJECT_DIR, check=True, capture_output=True)
    return path
