"""Parallel work over chunks of a dataset: `map_chunks` runs a function on chunks of indices in worker
processes ('spawn') with bounded memory, or inline when the work is too small to repay the workers."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from core.errors import DatasetError
from core.spawning import SPAWN

SCAN_CHUNK = 256
# Below this many patches, starting worker processes (~0.5 s with spawn) costs more than it saves.
MIN_PARALLEL_PATCHES = 4096


class Dataset(Protocol):
    """What the work here needs of a dataset (core.data.base's Dataset is one; named structurally so
    this module, which base imports, does not import base): a picklable object that reads patches."""

    def read_tolerant(self, indices: Sequence[int]) -> tuple[Any, Any, dict[int, str]]: ...


_WORKER_DATASET: Dataset | None = None


def _init_worker(dataset: Dataset) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def scan_chunk(dataset: Dataset, indices: list[int]) -> tuple[list[int], dict[int, str]]:
    """Decode a chunk; return its indices and {index: reason} for the patches that failed."""
    _, _, bad = dataset.read_tolerant(indices)
    return indices, bad


def _in_worker(job: tuple[Callable, list[int]]) -> Any:
    function, indices = job
    return function(_WORKER_DATASET, indices)


def map_chunks(
    dataset: Dataset,
    function: Callable[[Dataset, list[int]], Any],
    chunks: Iterable[list[int]],
    *,
    workers: int = 2,
    in_flight: int | None = None,
    min_parallel: int | None = None,
) -> Iterator[Any]:
    """Yield function(dataset, chunk) for each chunk, in order, from `workers` processes.

    Processes start with 'spawn' (safe when TensorFlow or threads live in the parent), get the
    dataset once, and at most `in_flight` chunks (default 2 per worker) are pending, so memory
    stays bounded whatever the dataset size. Runs inline with workers <= 1, a single chunk, or
    fewer than `min_parallel` (default MIN_PARALLEL_PATCHES) patches in all.
    """
    chunks = list(chunks)
    if (
        workers <= 1
        or len(chunks) <= 1
        or sum(map(len, chunks)) < (MIN_PARALLEL_PATCHES if min_parallel is None else min_parallel)
    ):
        for chunk in chunks:
            yield function(dataset, chunk)
        return
    limit = in_flight or 2 * workers
    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=SPAWN,
        initializer=_init_worker,
        initargs=(dataset,),
    ) as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_in_worker, (function, chunk)))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise DatasetError("a worker process died while reading patches; try --workers 1.") from None
        finally:
            for future in pending:
                future.cancel()
