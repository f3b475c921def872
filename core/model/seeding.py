"""Seeded model building that other threads of the process cannot disturb.

Keras gives every initializer and layer built without a seed one drawn from Python's global `random`
(keras.src.random.seed_generator.make_default_seed), which `keras.utils.set_random_seed` seeds. Any
other thread drawing from the same global `random` while a model is built shifts every seed after the
draw. On an engine worker that thread exists: Dask's event loop sizes task data with
`dask.sizeof`, which calls `random.sample`. So a seeded run built on a warm worker got other initial
weights than the same run from the CLI (patchnet, 2 epochs on data/sample: val AUC 0.8566 or 0.8654
against 0.8678), depending on what the event loop did at that moment.

`seeded(seed)` seeds Python, NumPy and TensorFlow as `set_random_seed` does and, until it ends, lets
Keras draw this thread's default seeds from its own `random.Random(seed)`: the same sequence the
seeded global `random` gives a lone thread, so a run's numbers are those of a process of its own.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _ThreadSeeds:
    """Stands in for the `random` module inside Keras' seed generator: a thread inside `seeded` draws
    from its own generator, every other thread from the global `random` as before."""

    def __init__(self):
        self.local = threading.local()

    def __getattr__(self, name: str):
        own = getattr(self.local, "generator", None)
        return getattr(own if own is not None else random, name)


_thread_seeds = _ThreadSeeds()


def _install():
    """Point Keras' seed generator at the per-thread source (idempotent)."""
    from keras.src.random import seed_generator

    seed_generator.python_random = _thread_seeds


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build models inside this block: seeded by `seed` alone, whatever other threads draw meanwhile."""
    import keras

    _install()
    keras.utils.set_random_seed(seed)
    before = getattr(_thread_seeds.local, "generator", None)
    _thread_seeds.local.generator = random.Random(seed)
    try:
        yield
    finally:
        _thread_seeds.local.generator = before
