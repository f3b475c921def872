"""Starting worker processes from a process whose `__main__` is not a program: the one home of that rule.

A 'spawn' child re-runs the parent's `__main__` file before it does any work (so that functions
defined there can be unpickled). Under Streamlit `sys.modules['__main__']` is the page script of the
last rerun, and under AppTest the text of a test's function: a child would run a dashboard page, or
die of a `NameError`, leaving the parent blocked writing to it. Nothing PatchLens sends to a worker
lives in `__main__`, so children are started with an empty one:

- `SPAWN`, a 'spawn' context whose processes start that way (for `ProcessPoolExecutor`), and
- `plain_main()`, for code that starts processes through another library (the Dask LocalCluster).
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import context

_lock = threading.RLock()


@contextmanager
def plain_main() -> Iterator[None]:
    """Within this block `__main__` is an empty module, so processes started here run no script."""
    with _lock:
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved


class _PlainSpawnProcess(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        with plain_main():
            return context.SpawnProcess._Popen(process_obj)


class _PlainSpawnContext(context.SpawnContext):
    Process = _PlainSpawnProcess


SPAWN = _PlainSpawnContext()
