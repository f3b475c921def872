"""Convert any dataset once into a uint8 HDF5 cache that training reads epoch after epoch.

The cache file holds:
  x         (N, 96, 96, 3) uint8, chunked by 64 patches, uncompressed: on 1,000 sample patches lzf
            saved 8% of the size but wrote 7x slower and read random batches 2x slower
  y         (N,) int8, 0/1, or -1 for an unlabelled patch
  ids       (N,) utf-8 strings
  groups    (N,) utf-8 slide ids, only when the source had them (PCam meta `wsi`)
  problems  a JSON list of {item, problem}: what the source reported plus what failed to decode
  attrs     patchlens_cache = 1, source (path), layout (of the source)

Patches are decoded by worker processes ('spawn', safe with TensorFlow loaded in the parent), a
chunk of indices each, and written in order by the parent with at most two chunks per worker in
flight, so memory stays bounded on the 220,025-file Kaggle set. Below MIN_PARALLEL_PATCHES
(core.data.scan) the work runs in-process: starting workers costs more than it saves.
The file is written under a temporary name in the same folder and renamed at the end, so a crash
or an error never leaves a half-written cache and never harms an existing one.

Measured here (2 cores shared with a running training job, load average 4-5, files in page cache):
  data/sample, 1,000 Kaggle TIFFs, in-process             9,000-16,000 patches/s
  12,000 Kaggle TIFFs   workers=1: 14,000-16,000/s       workers=2: ~6,000/s
  12,000 JPEGs (class folders)  workers=1: 2,000-3,000/s   workers=2: ~1,400/s
Kaggle TIFFs take the raw fast path of core.data.images, so shipping pixels between processes costs
more than decoding them; on a busy 2-core machine use --workers 1. Workers pay off only for
Pillow-decoded formats on cores that are actually free.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.constants import PATCH_SHAPE
from core.data.base import Dataset, HDF5Dataset, Problem, content_hash
from core.data.dataset import open_dataset
from core.data.layouts import CACHE_MARK, CACHE_VERSION, UNLABELLED, open_cache
from core.data.scan import map_chunks
from core.errors import DatasetError, StorageError
from core.settings import cache_dir

CHUNK_PATCHES = 64
PATCH_COUNT = "n_patches"


@dataclass
class CacheSummary:
    """What `prepare` wrote, and how fast."""

    path: Path
    source: str
    layout: str
    n_patches: int
    n_skipped: int
    seconds: float
    problems: list[Problem] = field(default_factory=list)

    @property
    def patches_per_second(self) -> float:
        return (self.n_patches + self.n_skipped) / self.seconds if self.seconds > 0 else float("inf")


def prepare(
    dataset_or_path: Dataset | str | Path,
    out_path: str | Path,
    *,
    workers: int = 2,
    chunk: int = 512,
    progress=None,
) -> CacheSummary:
    """Write every readable patch of a dataset to one HDF5 cache at `out_path`.

    Parameters
    ----------
    dataset_or_path : an opened Dataset, or a path for `open_dataset`.
    out_path : the cache file to (re)write, atomically.
    workers : decoding processes (1 = decode in this process).
    chunk : patches per unit of work.
    progress : optional callable(done, total), called after each chunk.

    Unreadable patches are skipped and recorded in the cache's `problems` and the summary.
    Raises DatasetError if no patch could be read.
    """
    import h5py

    dataset = dataset_or_path if isinstance(dataset_or_path, Dataset) else open_dataset(dataset_or_path)
    out_path = Path(out_path).expanduser()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(dataset, HDF5Dataset):
        workers = 1  # pixels are already arrays: copying beats shipping them between processes
    total = len(dataset)
    chunks = [list(range(start, min(start + chunk, total))) for start in range(0, total, chunk)]
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    started = time.perf_counter()
    try:
        with h5py.File(temporary, "w") as handle:
            written, failed = _fill_cache(handle, dataset, chunks, workers, progress)
        os.replace(temporary, out_path)
    except (OSError, RuntimeError) as error:  # h5py reports a full disk as either
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) or "errno" in str(error):
            raise StorageError(
                f"could not write the cache {out_path}: {error}. Any earlier cache there is unchanged."
            ) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return CacheSummary(
        path=out_path,
        source=str(dataset.path),
        layout=dataset.layout,
        n_patches=written,
        n_skipped=len(failed),
        seconds=time.perf_counter() - started,
        problems=failed,
    )


def _fill_cache(
    handle, dataset: Dataset, chunks: list[list[int]], workers: int, progress
) -> tuple[int, list[Problem]]:
    """Decode the chunks into the open HDF5 file's pixels, then write its labels, ids, groups, problems and
    record; returns how many patches were written and the ones that could not be read."""
    total = len(dataset)
    x = handle.create_dataset(
        "x",
        shape=(total, *PATCH_SHAPE),
        maxshape=(None, *PATCH_SHAPE),
        dtype=np.uint8,
        chunks=(max(1, min(CHUNK_PATCHES, total)), *PATCH_SHAPE),
    )
    y = np.full(total, UNLABELLED, dtype=np.int8)
    ids: list[str] = []
    groups: list[str] = []
    failed: list[Problem] = []
    written = done = 0
    if progress:
        progress(0, total)
    for batch, good, bad in map_chunks(dataset, _read_chunk, chunks, workers=workers):
        x[written : written + len(good)] = batch
        if dataset.labels is not None:
            y[written : written + len(good)] = dataset.labels[good]
        ids += [dataset.ids[i] for i in good]
        if dataset.groups is not None:
            groups += [dataset.groups[i] for i in good]
        failed += [Problem(dataset.ids[i], message) for i, message in sorted(bad.items())]
        written += len(good)
        done += len(good) + len(bad)
        if progress:
            progress(done, total)
    if written == 0:
        raise DatasetError(f"no patch of {dataset.path} could be read; no cache written.")
    x.resize(written, axis=0)
    _write_index(handle, dataset, y[:written], ids, groups, failed)
    return written, failed


def _write_index(handle, dataset: Dataset, y: np.ndarray, ids: list[str], groups: list[str], failed) -> None:
    """Everything of the cache but its pixels: labels, ids, groups, problems and the record attributes."""
    import h5py

    text = h5py.string_dtype("utf-8")
    handle.create_dataset("y", data=y)
    handle.create_dataset("ids", data=np.array(ids, dtype=object), dtype=text)
    if dataset.groups is not None:
        handle.create_dataset("groups", data=np.array(groups, dtype=object), dtype=text)
    problems = dataset.problems + failed
    handle.create_dataset(
        "problems",
        data=json.dumps([asdict(p) for p in problems]),
        dtype=text,
    )
    handle.attrs[CACHE_MARK] = CACHE_VERSION
    handle.attrs["source"] = str(dataset.path)
    handle.attrs["layout"] = dataset.layout
    handle.attrs[PATCH_COUNT] = len(ids)  # its record: a cache holding another count is damaged


def _read_chunk(dataset: Dataset, indices: list[int]):
    return dataset.read_tolerant(indices)


def cache_path_for(dataset: Dataset) -> Path:
    """Where the cache of this dataset lives in the workspace; changes when its content does."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.path).resolve().name or "dataset")
    return cache_dir() / f"{name}-{content_hash(dataset)}.h5"


def cache_problem(path: str | Path) -> str | None:
    """Why the cache at `path` cannot be used (not readable HDF5, wrong shapes, counts that disagree with
    the count it recorded, an unreadable first or last patch), or None when it is sound. Cheap: it reads
    the index and two patches, not the pixels."""
    import h5py

    try:
        dataset = open_cache(path)
        with h5py.File(path, "r") as handle:
            recorded = handle.attrs.get(PATCH_COUNT)
            x = handle["x"]
            n = int(x.shape[0])
            if n:
                x[0], x[n - 1]  # noqa: B018 (a truncated or overwritten file fails here)
    except (DatasetError, OSError, RuntimeError, KeyError, ValueError) as error:
        return str(error)
    if recorded is not None and int(recorded) != n:
        return f"it holds {n:,} patches but recorded {int(recorded):,} when it was written"
    if len(dataset) == 0 and n:
        return "it has no usable patch"
    return None
