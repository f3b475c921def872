"""Patch content hashes: which patches a model trained on, decided by their pixels, not their paths.

A patch's hash is the first 8 bytes of BLAKE2b over its uint8 RGB pixels (96 x 96 x 3, C order),
read as a little-endian uint64: the same patch gives the same hash whether it is read from a
Kaggle TIFF, a lossless class-folder PNG, PCam's HDF5 or a training cache. Hashes are computed a
block of patches at a time, so memory stays bounded on any dataset size.

Training writes the sorted unique hashes of its training patches into the run directory
(TRAINING_HASHES); a model file outside a run carries them beside it (`<stem>.training_hashes.npy`,
e.g. models/baseline.training_hashes.npy). A dataset's hashes are cached in the workspace under its
content fingerprint, so a second look reads one small file. The overlap of a dataset with a model's
training data is the share of its readable patches whose hash is in that set.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import PATCH_SHAPE
from core.errors import DatasetError, StorageError

HASH_BLOCK = 512  # patches read and hashed at a time
UNREADABLE = np.uint64(0)  # the hash slot of a patch that could not be read (no patch hashes to 0)
TRAINING_HASHES = "training_hashes.npy"  # in a run directory
MODEL_HASHES_SUFFIX = ".training_hashes.npy"  # beside a model file outside a run: <stem> + suffix
HASHES_FOLDER = "hashes"  # in the workspace cache

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Overlap:
    """How many of the patches looked at were among a model's training patches."""

    in_training: int
    n: int
    pending: bool = False  # not counted yet: the dataset's hashes come with its predictions

    @property
    def fraction(self) -> float | None:
        return self.in_training / self.n if self.n and not self.pending else None

    @property
    def sentence(self) -> str:
        """The words every page uses: 'k of n patches were in this model's training data'."""
        if self.pending:
            return (
                "How many of these patches were in this model's training data is counted with its predictions"
            )
        return f"{self.in_training:,} of {self.n:,} patches were in this model's training data"


PENDING = Overlap(0, 0, pending=True)


# --------------------------------------------------------------------------- hashing pixels


def patch_hashes(patches: np.ndarray) -> np.ndarray:
    """The uint64 content hash of each patch of a uint8 (n, 96, 96, 3) array."""
    patches = np.asarray(patches)
    if patches.dtype != np.uint8 or patches.shape[1:] != PATCH_SHAPE:
        raise DatasetError(
            f"patches to hash must be uint8 (n, 96, 96, 3), not {patches.dtype} {patches.shape}."
        )
    patches = np.ascontiguousarray(patches)
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(p.data, digest_size=8).digest(), "little") for p in patches),
        dtype=np.uint64,
        count=len(patches),
    )
    hashes[hashes == UNREADABLE] = 1  # keep 0 free for 'unreadable'
    return hashes


def dataset_hashes(dataset, progress: Progress | None = None) -> np.ndarray:
    """The hash of every patch of an open dataset, aligned with `dataset.ids` (UNREADABLE where a
    patch cannot be read); cached in the workspace by the dataset's content fingerprint."""
    path = _cache_file(dataset)  # the dataset's content hash, computed once
    cached = _cached(path, len(dataset))
    if cached is not None:
        return cached
    hashes = np.full(len(dataset), UNREADABLE, dtype=np.uint64)
    for start in range(0, len(dataset), HASH_BLOCK):
        indices = list(range(start, min(start + HASH_BLOCK, len(dataset))))
        batch, good, _ = dataset.read_tolerant(indices)
        hashes[good] = patch_hashes(batch)
        if progress:
            progress(indices[-1] + 1, len(dataset))
    _save(hashes, path, quiet=True)
    return hashes


def cached_dataset_hashes(dataset) -> np.ndarray | None:
    """The dataset's hashes if they are cached already (dataset_hashes or a prediction job wrote them)."""
    return _cached(_cache_file(dataset), len(dataset))


def store_dataset_hashes(dataset, hashes: np.ndarray) -> None:
    """Cache hashes computed elsewhere (a prediction job hashes the pixels it scores), unless cached."""
    path = _cache_file(dataset)
    if _cached(path, len(dataset)) is None:
        _save(hashes, path, quiet=True)


def hashes_of_ids(dataset, ids: Sequence[str]) -> np.ndarray:
    """The hashes of the patches named by `ids` (UNREADABLE for an id the dataset does not hold)."""
    by_id = dict(zip(dataset.ids, dataset_hashes(dataset), strict=True))
    return np.array([by_id.get(str(i), UNREADABLE) for i in ids], dtype=np.uint64)


def cache_rows_hashes(parts: Iterable[tuple[str | Path, np.ndarray]]) -> np.ndarray:
    """The sorted unique hashes of the given rows of training caches: (cache path, row indices)."""
    import h5py

    found = []
    for path, rows in parts:
        with h5py.File(path, "r") as handle:
            for start in range(0, len(rows), HASH_BLOCK):
                found.append(patch_hashes(_read_rows(handle["x"], np.sort(rows[start : start + HASH_BLOCK]))))
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)


def _read_rows(x, rows: np.ndarray) -> np.ndarray:
    """Sorted rows of an HDF5 `x`: one slice over their span when they are dense (h5py's point
    selection is many times slower), else row by row."""
    if len(rows) == 0:
        return np.empty((0, *PATCH_SHAPE), dtype=np.uint8)
    first, last = int(rows[0]), int(rows[-1])
    if last - first < 2 * len(rows):
        return x[first : last + 1][rows - first]
    return np.stack([x[int(r)] for r in rows])


# --------------------------------------------------------------------------- a model's training record


def write_training_hashes(selection, run_dir: str | Path) -> Path:
    """Store the hashes of a run's training patches (a core.train Selection) in its directory."""
    target = Path(run_dir) / TRAINING_HASHES
    _save(cache_rows_hashes(selection.parts), target)
    return target


def training_hashes_path(model_file: str | Path) -> Path | None:
    """Where a model file's training record is: beside it as <stem>.training_hashes.npy, else its
    run directory's training_hashes.npy; None for a model trained before records were kept."""
    model_file = Path(model_file)
    for candidate in (
        model_file.with_name(model_file.stem + MODEL_HASHES_SUFFIX),
        model_file.parent / TRAINING_HASHES,
    ):
        if candidate.is_file():
            return candidate
    return None


def read_training_hashes(model_file: str | Path) -> np.ndarray | None:
    """The sorted training hashes of a model file, or None when it has no record."""
    path = training_hashes_path(model_file)
    if path is None:
        return None
    hashes = _load(path)
    if hashes is None:
        raise DatasetError(f"{path} is not a readable list of patch hashes; delete it or retrain.")
    return hashes


def overlap(hashes: np.ndarray, training: np.ndarray) -> Overlap:
    """How many of the readable patches (`hashes`) have a hash among the sorted `training` hashes."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    readable = hashes[hashes != UNREADABLE]
    if len(training) == 0 or len(readable) == 0:
        return Overlap(0, len(readable))
    at = np.clip(np.searchsorted(training, readable), 0, len(training) - 1)
    return Overlap(int((training[at] == readable).sum()), len(readable))


# --------------------------------------------------------------------------- files


def _cache_file(dataset) -> Path:
    from core.data.base import content_hash
    from core.settings import cache_dir

    return cache_dir() / HASHES_FOLDER / f"{content_hash(dataset)}-{len(dataset)}.npy"


def _cached(path: Path, n: int) -> np.ndarray | None:
    """The hashes cached at `path` when they are n long (a dataset's), else None."""
    cached = _load(path)
    return cached if cached is not None and len(cached) == n else None


def _load(path: Path) -> np.ndarray | None:
    try:
        hashes = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return hashes if hashes.dtype == np.uint64 and hashes.ndim == 1 else None


def _save(hashes: np.ndarray, path: Path, *, quiet: bool = False) -> None:
    """Write atomically; a cache that cannot be written (`quiet`) only costs a recomputation."""
    from core.files import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, hashes.astype(np.uint64), allow_pickle=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        if not quiet:
            raise StorageError(f"could not write {path}: {error}") from error
