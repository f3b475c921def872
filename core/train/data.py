"""The data of a training run: every dataset converted once into its HDF5 cache, then the training
and validation selections (a stratified random split, or a separate validation set whose ids are
excluded from training)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import RunError
from core.train.config import TrainConfig


@dataclass
class TrainingData:
    train: object  # core.train.pipeline.Selection
    val: object
    notes: list[str]


def _cache_for(path: str, workers: int, report: Callable[[str], None]) -> Path:
    """The HDF5 cache of a dataset, converting it once (reused by every later run)."""
    from core.data.cache import cache_path_for, cache_problem, prepare
    from core.data.dataset import open_dataset

    dataset = open_dataset(path)
    if dataset.layout == "cache":
        return Path(dataset.path)
    target = cache_path_for(dataset)
    problem = cache_problem(target) if target.exists() else None
    if problem:
        report(f"The cache {target} of {Path(path).name} is damaged ({problem}); rebuilding it")
    if problem or not target.exists():
        start = time.time()

        def progress(done: int, total: int) -> None:
            report(f"Converting {Path(path).name} into a cache: {done}/{total} patches")

        prepare(dataset, target, workers=workers, progress=progress)
        report(f"Cached {len(dataset)} patches of {Path(path).name} in {time.time() - start:.0f} s")
    return target


def prepare_data(config: TrainConfig, report: Callable[[str], None] = lambda _: None) -> TrainingData:
    """Caches for every dataset, then the training and validation selections."""
    from core.train.pipeline import read_cache_index

    rng = np.random.default_rng(config.seed)
    notes: list[str] = []
    entries = []  # (cache path, ids, labels)
    for path in config.data:
        cache = _cache_for(path, config.workers, report)
        ids, labels = read_cache_index(cache)
        entries.append((cache, ids, labels))

    labelled = [np.flatnonzero(labels >= 0) for _, _, labels in entries]
    n_unlabelled = sum(len(ids) - len(rows) for (_, ids, _), rows in zip(entries, labelled))
    if n_unlabelled:
        notes.append(f"{n_unlabelled} unlabelled patches were left out of training.")

    if config.val_data:
        train_rows, val = _held_out_split(config, entries, labelled, report, notes)
    else:
        train_rows, val = _random_split(config, entries, rng)
    if config.limit:
        train_rows = _limited(train_rows, config.limit, rng, notes)
    train = _select(
        [(c, r) for (c, _, _), r in zip(entries, train_rows)],
        [ids for _, ids, _ in entries],
        [labels for _, _, labels in entries],
    )
    _check_split(train, val)
    return TrainingData(train=train, val=val, notes=notes)


def _select(parts_rows, all_ids, all_labels):
    """The Selection of the given (cache, rows) parts, rows sorted, with their ids and labels."""
    from core.train.pipeline import Selection

    parts, ids, labels = [], [], []
    for (cache, rows), part_ids, part_labels in zip(parts_rows, all_ids, all_labels):
        rows = np.sort(rows)
        if len(rows):
            parts.append((cache, rows))
            ids += [part_ids[r] for r in rows]
            labels.append(part_labels[rows])
    label_array = np.concatenate(labels).astype(np.float32) if labels else np.zeros(0, np.float32)
    return Selection(parts=parts, labels=label_array, ids=ids)


def _held_out_split(config: TrainConfig, entries, labelled, report, notes: list[str]):
    """(training rows per entry, validation Selection) with config.val_data as the validation set and
    its patches left out of training."""
    from core.train.pipeline import read_cache_index

    val_cache = _cache_for(config.val_data, config.workers, report)
    val_ids, val_labels = read_cache_index(val_cache)
    val_rows = np.flatnonzero(val_labels >= 0)
    if len(val_rows) == 0:
        raise RunError(f"The validation dataset {config.val_data} has no labelled patches.")
    held_out = {val_ids[r] for r in val_rows}
    train_rows = []
    excluded = 0
    for (_, ids, _), rows in zip(entries, labelled):
        keep = np.array([ids[r] not in held_out for r in rows], dtype=bool)
        excluded += int((~keep).sum())
        train_rows.append(rows[keep])
    if excluded:
        notes.append(f"{excluded} training patches also in the validation set were excluded.")
    return train_rows, _select([(val_cache, val_rows)], [val_ids], [val_labels])


def _random_split(config: TrainConfig, entries, rng: np.random.Generator):
    """(training rows per entry, validation Selection): one stratified random split over all labelled
    patches (shares slides: optimistic)."""
    train_rows, val_rows_parts = [], []
    for _, _, labels in entries:
        rows = np.flatnonzero(labels >= 0)
        val_mask = np.zeros(len(rows), dtype=bool)
        for cls in (0, 1):
            members = np.flatnonzero(labels[rows] == cls)
            n_val = int(round(len(members) * config.val_fraction))
            val_mask[rng.permutation(members)[:n_val]] = True
        train_rows.append(rows[~val_mask])
        val_rows_parts.append(rows[val_mask])
    val = _select(
        [(c, r) for (c, _, _), r in zip(entries, val_rows_parts)],
        [ids for _, ids, _ in entries],
        [labels for _, _, labels in entries],
    )
    return train_rows, val


def _limited(train_rows: list[np.ndarray], limit: int, rng: np.random.Generator, notes: list[str]):
    """The training rows cut to a random `limit` of them (all of them when there are no more)."""
    total = sum(len(r) for r in train_rows)
    if total <= limit:
        return train_rows
    keep = np.sort(rng.permutation(total)[:limit])
    bounds = np.cumsum([0] + [len(r) for r in train_rows])
    notes.append(f"Training limited to {limit} of {total} patches.")
    return [
        rows[keep[(keep >= lo) & (keep < hi)] - lo]
        for rows, lo, hi in zip(train_rows, bounds[:-1], bounds[1:])
    ]


def _check_split(train, val) -> None:
    if len(train) == 0:
        raise RunError("No labelled training patches are left after the validation split.")
    if len(val) == 0:
        raise RunError("The validation set is empty; raise the validation fraction.")
    if len(np.unique(train.labels)) < 2:
        raise RunError("The training patches hold only one class; a classifier needs both.")


def fit_normaliser(config: TrainConfig, train):
    """The run's stain normaliser (core.data.normalise), fitted on the given reference patch or on one
    picked from REFERENCE_SAMPLE random training patches; identity for "none"."""
    from core.data.normalise import REFERENCE_SAMPLE, StainNormaliser

    normaliser = StainNormaliser(config.stain_normalisation)
    if not normaliser.active:
        return normaliser
    if config.stain_reference:
        from core.data.images import decode_patch

        return normaliser.fit(decode_patch(config.stain_reference))
    from core.train.pipeline import load_pixels

    sample = train.sample(REFERENCE_SAMPLE, seed=config.seed)
    return normaliser.fit(load_pixels(sample), ids=sample.ids)
