"""Reading patches ahead of the model: a producer thread fills a small queue while the model scores the
batch before, so decoding and the forward pass overlap and only PREFETCH_BATCHES + 1 batches of pixels
exist at a time.

`read_ahead` runs any batch iterator that way (the one scoring loop, core.evaluate.score, runs its
sources through it); `dataset_chunks` reads a Dataset in runs of consecutive patches, naming the ones that
cannot be read; `read_dataset` streams a whole Dataset through `read_ahead`, leaving out the patches that
cannot be read and reporting progress (for a pass over the pixels that runs no model). Errors in the producer are raised in the consumer, never lost.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from typing import TypeVar

import numpy as np

from core.data.quality import quality_labels

PREFETCH_BATCHES = 2  # batches the reader thread may have ready ahead of the model

Item = TypeVar("Item")
Progress = Callable[[int, int], None]

_END = object()


class _Failure:
    """An error of the producer thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[Item], *, name: str, join_timeout: float = 5.0) -> Iterator[Item]:
    """The items of `items`, produced by a daemon thread up to PREFETCH_BATCHES ahead of the consumer.

    The thread starts at the first `next`; closing the generator (use `contextlib.closing`) stops it
    and waits up to `join_timeout` s for it to end.
    """
    ready: queue.Queue = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(_END)
        except BaseException as error:  # re-raised in the consumer thread, never lost here
            put(_Failure(error))

    reader = threading.Thread(target=produce, name=name, daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join(timeout=join_timeout)


def dataset_chunks(
    dataset, batch_size: int, *, first: int | None = None
) -> Iterator[tuple[np.ndarray, list[int], dict[int, str]]]:
    """(pixels, indices read, {index: problem}) per run of `batch_size` consecutive patches of the
    dataset (Dataset.read_tolerant: a patch that cannot be read is named, not raised); with `first`,
    the first run is only that long (at most `batch_size`)."""
    total = len(dataset)
    starts = list(range(0, total, batch_size))
    if first is not None and 0 < first < batch_size and total > first:
        starts = [0, *range(first, total, batch_size)]
    for start, end in zip(starts, [*starts[1:], total]):
        yield dataset.read_tolerant(list(range(start, end)))


def _dataset_batches(dataset, batch_size: int, quality: bool) -> Iterator[tuple]:
    """(pixels, indices read, {index: problem}, quality labels or None) per batch of the dataset; with
    `quality` the input-quality gate runs here, in the reader thread, on the pixels just read."""
    for pixels, good, bad in dataset_chunks(dataset, batch_size):
        yield pixels, good, bad, quality_labels(pixels) if quality else None


def read_dataset(
    dataset,
    batch_size: int,
    *,
    skipped: dict[str, str],
    quality: bool = False,
    progress: Progress | None = None,
    name: str = "patch-reader",
) -> Iterator[tuple[np.ndarray, list[int], list[str] | None]]:
    """(pixels, their indices, quality labels or None) per batch of readable patches, read ahead.

    The patches that cannot be read are left out and put in `skipped` ({id: why}); `progress(done,
    total)` is called before the first batch and after the consumer is done with each one.
    """
    total, done = len(dataset), 0
    if progress:
        progress(0, total)
    with closing(read_ahead(_dataset_batches(dataset, batch_size, quality), name=name)) as batches:
        for pixels, good, bad, labels in batches:
            if good:
                yield pixels, good, labels
            skipped.update({dataset.ids[i]: reason for i, reason in bad.items()})
            done += len(good) + len(bad)
            if progress:
                progress(done, total)
