"""Penultimate-layer features of a model: what the final Dense layer sees, for every patch of a dataset.

Owns the streamed feature pass over a Dataset and the on-disk feature cache; the extractor itself is
core.model.features'.

Every PatchLens architecture ends GlobalAveragePooling -> Dropout -> Dense(1), so the features are
the pooled activations of the last convolution (D = its channel count: 256 for patchnet). Dropout
is the identity at inference, so they are exactly the Dense layer's input. The same forward pass
also yields the tumour probability, so one pass gives both.

Memory: the pixels go through the one scoring loop (core.evaluate.score: a reader thread, two batches in
flight), so only the N x D float32 feature matrix grows with the dataset (100 MB at 100,000 patches, D=256).

Cache: `cache/features/<key>.npz` in the workspace, keyed like the prediction cache (model file
path, mtime and size + the dataset's content), written atomically, with a `<key>.json` sidecar
that says what the key stands for and which patches could not be read.

TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.data import cache_records
from core.errors import DatasetError
from core.evaluate.predict import DEFAULT_BATCH_SIZE, forward_pass
from core.evaluate.predictions import prediction_cache_key
from core.evaluate.score import dataset_batches, score_batches
from core.files import atomic_file
from core.model.features import final_dense_layer, probabilities_and_features

FEATURE_CACHE_FORMAT = 3  # bump when the stored arrays change meaning (2: after the model's stain normaliser,
# 3: a record with the row count and the file's hash)
FEATURES_SUBDIR = "features"
NPZ_KEYS = ("ids", "features", "probs", "labels", "quality", "groups")

Progress = Callable[[int, int], None]


@dataclass
class FeatureSet:
    """Features of the readable patches of a dataset, in dataset order.

    labels: float (NaN when unlabelled); quality: 'ok' or the input-quality flags joined by ';';
    groups: slide ids when the dataset has them, else None; skipped: {id: why it was left out}.
    """

    ids: list[str]
    features: np.ndarray  # (N, D) float32
    probs: np.ndarray  # (N,) float32, P(tumour) from the same forward pass
    labels: np.ndarray  # (N,) float64
    quality: list[str]
    groups: list[str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    cached: str | None = None  # the cache file these came from or were written to
    from_cache: bool = False  # True when read from disk without running the model
    _positions: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, item: str) -> int:
        """The row of patch `item`; DatasetError when it is not among the features."""
        if not self._positions:
            self._positions = {name: k for k, name in enumerate(self.ids)}
        if item not in self._positions:
            raise DatasetError(f"no patch with id {item!r} among the {len(self):,} patches of this dataset.")
        return self._positions[item]


# --------------------------------------------------------------------------- the extractor


def patch_features(model, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, D) and probabilities (n,) of one patch (96, 96, 3) or a stack, values 0-255."""
    final_dense_layer(model)  # ModelError in words for a model with no penultimate features
    probs, features = probabilities_and_features(model, patches)
    return features, probs


# --------------------------------------------------------------------------- a whole dataset


def compute_features(
    model, dataset, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> FeatureSet:
    """Features, probabilities and input-quality flags of every readable patch, in streamed batches.

    Only two batches of pixels exist at a time; unreadable patches are left out and listed in
    `skipped`, like core.evaluate.predict.predict_dataset.
    """
    total = len(dataset)
    features: np.ndarray | None = None
    probs = np.empty(total, dtype=np.float32)
    kept = np.zeros(total, dtype=bool)
    quality: list[str] = []
    skipped: dict[str, str] = {}
    source = dataset_batches(dataset, batch_size, skipped=skipped)
    scored = score_batches(
        model,
        source,
        forward=forward_pass(model, features=True),
        total=total,
        quality=True,
        progress=progress,
        name="feature-reader",
    )
    with closing(scored):
        for batch in scored:
            if features is None:
                features = np.empty((total, batch.features.shape[1]), dtype=np.float32)
            features[batch.where] = batch.features
            probs[batch.where] = batch.probs
            kept[batch.where] = True
            quality.extend(batch.quality_labels)
    if features is None:
        raise DatasetError(f"no patch of {dataset.path} could be read, so there are no features.")
    index = np.flatnonzero(kept)
    all_kept = len(index) == total
    return FeatureSet(
        ids=[dataset.ids[i] for i in index],
        features=features if all_kept else features[index],
        probs=probs if all_kept else probs[index],
        labels=(
            dataset.labels[index].astype(np.float64)
            if dataset.labels is not None
            else np.full(len(index), np.nan)
        ),
        quality=quality,
        groups=[dataset.groups[i] for i in index] if dataset.groups is not None else None,
        skipped=skipped,
    )


# --------------------------------------------------------------------------- the disk cache


def feature_cache_key(model_path: str | Path, dataset) -> str:
    """The cache file name: what decides the prediction cache's key (model file, dataset content),
    tagged with this cache's format."""
    base = prediction_cache_key(model_path, dataset, tta=False)
    return hashlib.sha256(f"features-{FEATURE_CACHE_FORMAT}:{base}".encode()).hexdigest()[:24]


def default_feature_cache_dir() -> Path:
    from core.settings import cache_dir

    return cache_dir() / FEATURES_SUBDIR


def feature_cache_path(model_path: str | Path, dataset, cache_dir: str | Path | None = None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_feature_cache_dir()
    return folder / f"{feature_cache_key(model_path, dataset)}.npz"


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> Path:
    """np.savez to a temp file in the same folder, fsync, rename: never a half-written file."""
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)
    return Path(path)


def _write_cache(path: Path, found: FeatureSet, description: dict) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        ids=np.array(found.ids, dtype=str),
        features=found.features,
        probs=found.probs,
        labels=found.labels,
        quality=np.array(found.quality, dtype=str),
        groups=np.array(found.groups if found.groups is not None else [], dtype=str),
    )
    cache_records.write_cached_bytes(
        path, buffer.getvalue(), description, rows=len(found), skipped=found.skipped
    )


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        return {key: stored[key] for key in NPZ_KEYS}


def _ids(arrays: dict[str, np.ndarray]) -> list[str]:
    return arrays["ids"].tolist()


def read_features(path: str | Path, dataset=None) -> FeatureSet:
    """A FeatureSet from a cache file written by `cached_features`, checked against its record
    (core.data.cache_records; given `dataset`, also against its ids): DamagedCacheError if they disagree."""
    path = Path(path)
    arrays, record = cache_records.read_checked(path, _arrays, _ids, None if dataset is None else dataset.ids)
    ids = arrays["ids"].tolist()
    groups = arrays["groups"].tolist()
    return FeatureSet(
        ids=ids,
        features=arrays["features"],
        probs=arrays["probs"],
        labels=arrays["labels"],
        quality=arrays["quality"].tolist(),
        groups=groups if len(groups) == len(ids) and ids else None,
        skipped=record.skipped,
        cached=str(path),
        from_cache=True,
    )


def cached_features(
    model_path: str | Path,
    dataset,
    *,
    cache_dir: str | Path | None = None,
    model=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> FeatureSet:
    """Features of the model at `model_path` on `dataset`, computed once and kept on disk.

    `cache_dir` defaults to <workspace>/cache/features. Pass an already loaded `model` to skip
    loading it again on a miss. A changed model file or dataset misses the cache; an entry that
    disagrees with its record (read_features) is recomputed and overwritten, with a
    CacheRecomputedWarning that says why.
    """
    from core.model.io import resolve_model_path

    path = feature_cache_path(model_path, dataset, cache_dir)
    if path.is_file():
        try:
            found = read_features(path, dataset)
            if progress:
                progress(len(dataset), len(dataset))
            return found
        except cache_records.DamagedCacheError as error:
            cache_records.warn_recomputed(path, str(error))
    if model is None:
        from core.model.io import load_model

        model = load_model(model_path)
    found = compute_features(model, dataset, batch_size=batch_size, progress=progress)
    model_file = resolve_model_path(model_path).resolve()
    description = {
        "format": FEATURE_CACHE_FORMAT,
        "model": str(model_file),
        "dataset": str(Path(dataset.path).resolve()),
        "layout": dataset.layout,
        "n": len(dataset),
    }
    _write_cache(path, found, description)
    found.cached = str(path)
    return found


def require_labels(dataset, name: str | Path) -> None:
    """DatasetError when `dataset` has no labels: the feature map colours and samples by them."""
    if dataset.labels is None:
        raise DatasetError(
            f"{name} is unlabelled ({dataset.layout} layout): the feature map and similar patches need "
            "labels. Score unlabelled patches with `predict` or the Predict page."
        )
