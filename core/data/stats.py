"""Derived views of a dataset for the Dataset page: pages, sampled colour statistics, histograms,
and the input-quality labels (core.data.quality) of its patches.

Statistics read a bounded random sample (2,000 patches by default), never every pixel, so the
page stays quick on a 220,000-patch dataset; the page caches the result. Quality labels are
computed on every patch up to QUALITY_ALL_MAX patches (20,000: ~15 s of reading TIFFs on one
core) and on a stratified random sample of QUALITY_SAMPLE patches above that; both read batches
of QUALITY_BATCH patches, so memory stays bounded whatever the dataset's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.constants import LABEL_NAMES
from core.data.dataset import Dataset
from core.data.quality import FLAG_SEPARATOR, OK, count_flags, quality_labels
from core.formatting import page_bounds

STATS_SAMPLE = 2000
CHANNELS = ("red", "green", "blue")
QUALITY_ALL_MAX = 20_000  # up to this many patches, every patch gets its quality label
QUALITY_SAMPLE = 5_000  # above it, a stratified random sample of this many (per-class shares kept)
QUALITY_BATCH = 256  # patches read and assessed at once
ALL = "all"  # the quality filter that keeps every patch


def label_name(label) -> str:
    if label is None or (isinstance(label, float) and np.isnan(label)) or int(label) < 0:
        return "unlabelled"
    return LABEL_NAMES[int(label)]


def filtered_indices(dataset: Dataset, label: int | None = None) -> np.ndarray:
    """Positions of the patches with this label (all patches when label is None)."""
    if label is None or dataset.labels is None:
        return np.arange(len(dataset))
    return np.flatnonzero(dataset.labels == label)


def page_of(indices: np.ndarray, page: int, page_size: int) -> np.ndarray:
    """The positions on one page (1-based page number, clipped to the last page)."""
    start, stop, _ = page_bounds(len(indices), page, page_size)
    return indices[start:stop]


def sample_indices(dataset: Dataset, max_patches: int = STATS_SAMPLE, seed: int = 0) -> np.ndarray:
    n = len(dataset)
    if n <= max_patches:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_patches, replace=False))


def colour_statistics(dataset: Dataset, max_patches: int = STATS_SAMPLE, seed: int = 0) -> pd.DataFrame:
    """Per class: patches sampled, mean and standard deviation of each channel, mean brightness and
    the share of mostly-blank patches (> 80 % of pixels brighter than 220 in every channel)."""
    indices = sample_indices(dataset, max_patches, seed)
    rows = []
    means, stds, blank, labels = [], [], [], []
    for start in range(0, len(indices), 256):
        chunk = indices[start : start + 256]
        batch, kept, _ = dataset.read_tolerant(chunk)
        if len(kept) == 0:
            continue
        # Planar (B, 3, H*W) float32: reductions over contiguous memory run ~3x faster (bench/).
        planar = np.ascontiguousarray(batch.reshape(len(kept), -1, 3).transpose(0, 2, 1), dtype=np.float32)
        means.append(planar.mean(axis=2))
        stds.append(planar.std(axis=2))
        blank.append((batch > 220).all(axis=3).reshape(len(kept), -1).mean(axis=1) > 0.8)
        if dataset.labels is not None:
            labels.append(dataset.labels[np.asarray(kept)])
    if not means:
        return pd.DataFrame()
    means, stds, blank = np.concatenate(means), np.concatenate(stds), np.concatenate(blank)
    label_array = np.concatenate(labels) if labels else np.full(len(means), -1)
    for label in sorted(set(label_array.tolist())):
        mask = label_array == label
        row = {"class": label_name(label), "patches sampled": int(mask.sum())}
        for c, channel in enumerate(CHANNELS):
            row[f"mean {channel}"] = round(float(means[mask, c].mean()), 1)
            row[f"std {channel}"] = round(float(stds[mask, c].mean()), 1)
        row["brightness"] = round(float(means[mask].mean()), 1)
        row["mostly blank %"] = round(100 * float(blank[mask].mean()), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def channel_histograms(patch: np.ndarray, bins: int = 32) -> pd.DataFrame:
    """Long-form per-channel histogram of one patch: columns channel, value, count."""
    edges = np.linspace(0, 256, bins + 1)
    frames = []
    for c, channel in enumerate(CHANNELS):
        counts, _ = np.histogram(patch[..., c], bins=edges)
        frames.append(pd.DataFrame({"channel": channel, "value": edges[:-1], "count": counts}))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- input quality


@dataclass(frozen=True)
class DatasetQuality:
    """Input-quality labels of a dataset's patches (core.data.quality: 'ok' or flags joined by ';').

    indices : sorted dataset positions that were assessed (all, or a stratified sample).
    labels : the quality label of each of them, aligned with `indices`.
    n_patches : patches in the dataset when it was assessed.
    unreadable : {position: problem} for chosen patches that could not be read (skipped).
    """

    indices: np.ndarray
    labels: tuple[str, ...]
    n_patches: int
    unreadable: dict[int, str] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        """True when only a sample of the dataset was chosen for assessment."""
        return len(self.indices) + len(self.unreadable) < self.n_patches

    @property
    def counts(self) -> dict[str, int]:
        """{'ok' and each flag: assessed patches with it} (core.data.quality.count_flags)."""
        return count_flags(self.labels)

    def matching(self, choice: str) -> np.ndarray:
        """The assessed positions whose label is `choice` ('ok') or carries the flag `choice`."""
        if choice == OK:
            keep = [label == OK for label in self.labels]
        else:
            keep = [choice in label.split(FLAG_SEPARATOR) for label in self.labels]
        return self.indices[np.array(keep, dtype=bool)] if len(keep) else self.indices


def quality_sample(dataset: Dataset, max_all: int | None = None, size: int | None = None, seed: int = 0):
    """The positions to assess: every patch up to `max_all` (QUALITY_ALL_MAX), else `size`
    (QUALITY_SAMPLE) drawn at random within each class in proportion to its share (unlabelled
    datasets: one stratum). Sorted."""
    max_all = QUALITY_ALL_MAX if max_all is None else max_all
    size = QUALITY_SAMPLE if size is None else size
    n = len(dataset)
    if n <= max_all:
        return np.arange(n)
    strata = np.zeros(n, dtype=np.int64) if dataset.labels is None else np.asarray(dataset.labels)
    classes, members = np.unique(strata, return_counts=True)
    quotas = _proportional_quotas(members, min(size, n))
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(strata == value), size=quota, replace=False)
        for value, quota in zip(classes, quotas)
    ]
    return np.sort(np.concatenate(chosen))


def _proportional_quotas(members: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of `total` proportional to `members` (largest remainders get the rest)."""
    exact = members * total / members.sum()
    quotas = np.floor(exact).astype(np.int64)
    for k in np.argsort(quotas - exact)[: total - quotas.sum()]:
        quotas[k] += 1
    return np.minimum(quotas, members)


def dataset_quality(
    dataset: Dataset,
    max_all: int | None = None,
    size: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetQuality:
    """Quality labels of every patch (or a stratified sample, see `quality_sample`), read in
    batches of QUALITY_BATCH through `dataset.read_tolerant`; unreadable patches are skipped and
    reported in `unreadable`. `progress(done, total)` is called after each batch."""
    chosen = quality_sample(dataset, max_all, size, seed)
    indices: list[int] = []
    labels: list[str] = []
    unreadable: dict[int, str] = {}
    for start in range(0, len(chosen), QUALITY_BATCH):
        patches, kept, bad = dataset.read_tolerant(chosen[start : start + QUALITY_BATCH])
        if kept:
            indices.extend(int(i) for i in kept)
            labels.extend(quality_labels(patches))
        unreadable.update({int(i): problem for i, problem in bad.items()})
        if progress:
            progress(min(start + QUALITY_BATCH, len(chosen)), len(chosen))
    return DatasetQuality(np.array(indices, dtype=np.int64), tuple(labels), len(dataset), unreadable)


def with_quality(indices: np.ndarray, quality: DatasetQuality | None, choice: str) -> np.ndarray:
    """The positions of `indices` (sorted) whose quality matches `choice`; all of them for 'all'."""
    if choice == ALL or quality is None:
        return indices
    return np.intersect1d(indices, quality.matching(choice), assume_unique=True)
