"""The tf.data input pipeline over uint8 HDF5 caches written by `core.data.cache.prepare`.

Small selections (up to `memory_limit_bytes`, 1 GB by default ≈ 37,000 patches) are read once
into one uint8 numpy array and batched by index gathers. Larger ones stream
from the HDF5 files: contiguous blocks are read in a random order, shuffled within a pool of
blocks, so memory stays bounded whatever the dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import PATCH_SHAPE
from core.model.augment import AugmentConfig, augment_batch

PATCH_BYTES = int(np.prod(PATCH_SHAPE))
DEFAULT_MEMORY_LIMIT = 1024**3  # ~37,000 patches; larger selections stream
BLOCK_ROWS = 1024  # rows read from HDF5 at once when streaming
POOL_BLOCKS = 4  # blocks shuffled together when streaming


@dataclass
class Selection:
    """Rows of one or more caches: `parts[i]` = (cache path, sorted row indices)."""

    parts: list[tuple[Path, np.ndarray]]
    labels: np.ndarray  # float32 aligned with the concatenation of parts
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_bytes(self) -> int:
        return len(self) * PATCH_BYTES

    def sample(self, n: int, seed: int = 0) -> Selection:
        """At most `n` of these rows drawn at random (kept in cache order); all of them if fewer."""
        if n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        parts, offset = [], 0
        for path, rows in self.parts:
            mine = keep[(keep >= offset) & (keep < offset + len(rows))] - offset
            if len(mine):
                parts.append((path, rows[mine]))
            offset += len(rows)
        return Selection(parts=parts, labels=self.labels[keep], ids=[self.ids[i] for i in keep])


def read_cache_index(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Ids and labels (int8, -1 = unlabelled) of a cache, without touching the pixels."""
    import h5py

    with h5py.File(path, "r") as handle:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in handle["ids"][:]]
        labels = handle["y"][:].astype(np.int8)
    return ids, labels


def _read_rows(x, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted) of an HDF5 dataset: one contiguous read when they are dense, else only those
    rows (a sparse random sample must not read the whole span between its first and last row)."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 4 * len(rows):
        return x[lo:hi][rows - lo]
    return x[rows]


def load_pixels(selection: Selection) -> np.ndarray:
    """Read every selected patch into one uint8 array, block by block."""
    import h5py

    out = np.empty((len(selection), *PATCH_SHAPE), dtype=np.uint8)
    filled = 0
    for path, rows in selection.parts:
        with h5py.File(path, "r") as handle:
            x = handle["x"]
            for start in range(0, len(rows), BLOCK_ROWS * 4):
                chunk_rows = rows[start : start + BLOCK_ROWS * 4]
                out[filled : filled + len(chunk_rows)] = _read_rows(x, chunk_rows)
                filled += len(chunk_rows)
    return out


def _stream_blocks(selection: Selection, seed: int, shuffle: bool):
    """One pass of (x uint8, y float32) blocks; random block order and in-pool shuffle if asked."""
    import h5py

    rng = np.random.default_rng(seed)
    blocks = []
    offset = 0
    for part, (_, rows) in enumerate(selection.parts):
        for start in range(0, len(rows), BLOCK_ROWS):
            blocks.append((part, start, offset + start, min(start + BLOCK_ROWS, len(rows))))
        offset += len(rows)
    handles = {}
    try:
        order = rng.permutation(len(blocks)) if shuffle else np.arange(len(blocks))
        for pool_start in range(0, len(order), POOL_BLOCKS):
            xs, ys = [], []
            for b in order[pool_start : pool_start + POOL_BLOCKS]:
                part, start, global_start, stop = blocks[b]
                path, rows = selection.parts[part]
                if part not in handles:
                    handles[part] = h5py.File(path, "r")
                chunk = rows[start:stop]
                xs.append(_read_rows(handles[part]["x"], chunk))
                ys.append(selection.labels[global_start : global_start + len(chunk)])
            x, y = np.concatenate(xs), np.concatenate(ys)
            if shuffle:
                perm = rng.permutation(len(y))
                x, y = x[perm], y[perm]
            yield x, y
    finally:
        for handle in handles.values():
            handle.close()


def _normalised(blocks, normaliser):
    for x, y in blocks:
        yield (normaliser.transform(x) if normaliser is not None else x), y


def make_dataset(
    selection: Selection,
    *,
    batch_size: int,
    shuffle: bool,
    augment: AugmentConfig | None = None,
    seed: int = 0,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
    repeat: bool = False,
    normaliser=None,
):
    """A tf.data.Dataset of (float32 images 0-255, float32 labels (B, 1)) batches.

    `normaliser` (a core.data.normalise.StainNormaliser) is applied to the uint8 pixels before
    augmentation: once, when the selection is held in memory; per block read, when it streams.
    """
    import tensorflow as tf

    if selection.n_bytes <= memory_limit_bytes:
        data = _in_memory_batches(selection, batch_size, shuffle, seed, repeat, normaliser)
    else:
        data = _streamed_batches(selection, batch_size, shuffle, seed, repeat, normaliser)
    data = data.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None and augment.enabled:
        data = _augmented(data, augment, seed)
    return data.prefetch(tf.data.AUTOTUNE)


def _in_memory_batches(
    selection: Selection, batch_size: int, shuffle: bool, seed: int, repeat: bool, normaliser
):
    """uint8 batches gathered from one numpy copy of the (normalised) pixels, by a shuffled index."""
    import tensorflow as tf

    n = len(selection)
    labels = selection.labels.astype(np.float32).reshape(-1, 1)
    # One numpy copy of the pixels, gathered batch by batch. Capturing it as a tf.constant
    # cost two more full copies (the constant and the iterator's), ~3x the pixels in RAM.
    pixels = load_pixels(selection)
    if normaliser is not None:
        pixels = normaliser.transform(pixels)

    def gather(indices):
        return pixels[indices], labels[indices]

    def gather_batch(indices):
        x, y = tf.numpy_function(gather, [indices], (tf.uint8, tf.float32), stateful=False)
        x.set_shape([None, *PATCH_SHAPE])
        y.set_shape([None, 1])
        return x, y

    index = tf.data.Dataset.range(n)
    if shuffle:
        index = index.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        index = index.repeat()
    return index.batch(batch_size).map(gather_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _streamed_batches(
    selection: Selection, batch_size: int, shuffle: bool, seed: int, repeat: bool, normaliser
):
    """uint8 batches from blocks read (and normalised) as they are needed, a new block order each pass."""
    import tensorflow as tf

    signature = (
        tf.TensorSpec((None, *PATCH_SHAPE), tf.uint8),
        tf.TensorSpec((None,), tf.float32),
    )
    passes = iter(range(10**9))  # a new block order on every pass over the data
    blocks = tf.data.Dataset.from_generator(
        lambda: _normalised(_stream_blocks(selection, seed + next(passes), shuffle), normaliser),
        output_signature=signature,
    )
    data = blocks.unbatch()
    if repeat:
        data = data.repeat()
    return data.batch(batch_size).map(lambda x, y: (x, tf.reshape(y, [-1, 1])))


def _augmented(data, augment: AugmentConfig, seed: int):
    """Each float batch augmented with its own stateless seed pair (reproducible from `seed`)."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip((data, seeds)).map(
        lambda batch, s: (augment_batch(batch[0], s, augment), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
