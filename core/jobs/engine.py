"""The Dask client every job runs through: an embedded LocalCluster, or an existing cluster by address.

The first job of a process starts the engine: a LocalCluster of worker *processes* (count, threads
and memory from core.settings.engine_shape; no dashboard), or, when PATCHLENS_SCHEDULER (or `use`)
names one, a client of that scheduler. It is one per process, shared by every Streamlit session of the
server and closed at exit. Workers stay warm (core.jobs.worker: TensorFlow imported once, models
cached), so a job pays neither the import nor the model load twice.

A Dask future that is garbage-collected cancels its task, so every submitted future is kept here,
under its job folder, until it is done. Dask itself reruns the task of a worker that died (up to
`distributed.scheduler.allowed-failures` times); `retries` also reruns a task that raised.
"""

from __future__ import annotations

import atexit
import copy
import functools
import pickle
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.spawning import plain_main

# No dashboard; the scheduler's own HTTP endpoints (health, metrics) on localhost, on a free port.
LOCAL_ONLY = {
    "host": "127.0.0.1",
    "dashboard_address": None,
    "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
}
# What an idle embedded engine costs: no statistical profiler in the workers (Dask samples every
# thread every 10 ms for its dashboard, which is off) and an event-loop watchdog that ticks once a
# second instead of every 20 ms. Idle 2-worker cluster with TensorFlow imported, measured here:
# 15 % of a core (workers 9 %, scheduler and nannies 6 %) before, 4 % after.
QUIET = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}
# Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap threshold at
# 128 KiB: every tensor above it is mapped and unmapped again at each batch. Without it (glibc's own
# defaults, as a plain `python -m core` has), a warm worker's `predict` of 2,907 patches measured
# 8.7-9.7 s against 10.3-12.5 s (2 x 3 interleaved runs; BENCHMARKS.md "Job engine", stop 34).
GLIBC_DEFAULTS = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
_lock = threading.RLock()
_engine: dict = {"client": None, "cluster": None, "address": None}
_futures: dict[str, object] = {}  # job folder → the future of its task, until the task is done


def use(address: str | None) -> None:
    """Run jobs on the scheduler at `address` from now on (None: the default, PATCHLENS_SCHEDULER or
    the embedded cluster). Closes this process's current engine."""
    with _lock:
        close()
        _engine["address"] = address


@contextmanager
def using(address: str) -> Iterator[None]:
    """Jobs run on the scheduler at `address` inside this block; this process's engine before it (an
    address set with `use`, PATCHLENS_SCHEDULER or the embedded cluster) is back after it."""
    with _lock:
        before = _engine["address"]
    use(address)
    try:
        yield
    finally:
        use(before)


def client():
    """This process's Dask client, connected (and the embedded cluster started) on first use."""
    with _lock:
        current = _engine["client"]
        if current is None or current.status in ("closing", "closed"):
            _engine["client"] = current = _connect()
        return current


def _connect():
    from distributed import Client

    from core.jobs.worker import WarmWorker
    from core.settings import engine_shape, scheduler_address

    address = _engine["address"] or scheduler_address()
    if address:
        connected = Client(address, set_as_default=False, timeout="30s")
    else:
        _engine["cluster"] = cluster = local_cluster(**engine_shape())
        connected = Client(cluster, set_as_default=False)
    connected.register_plugin(WarmWorker())
    atexit.register(close)
    return connected


def local_cluster(**shape):
    """A LocalCluster of worker processes on this machine (`shape`: n_workers, threads_per_worker,
    memory_limit), localhost only and QUIET while idle."""
    import dask
    from distributed import LocalCluster

    # The workers must not run a Streamlit page as their __main__. The scheduler and the nannies read
    # QUIET and the workers' environment when they are made; the nannies hand a worker their own copy
    # of it, also when they restart one (a copy: dask.config.set puts its values back when the block
    # ends).
    with plain_main(), dask.config.set({**QUIET, **GLIBC_DEFAULTS}):
        quiet = copy.deepcopy(dask.config.config)
        return LocalCluster(processes=True, config=quiet, **LOCAL_ONLY, **shape)


def start_in_background() -> None:
    """Connect (and start the embedded cluster) in a thread, so the first job need not wait for it; a
    job launched meanwhile waits for the same connection."""
    threading.Thread(target=client, daemon=True, name="start-job-engine").start()


def close() -> None:
    """Close the client and, when this process started it, the embedded cluster."""
    with _lock:
        _futures.clear()
        for name in ("client", "cluster"):
            part, _engine[name] = _engine[name], None
            if part is not None:
                part.close()


class _Deferred:
    """A call that runs when it is unpickled: pickle stores `function` by its module and name."""

    def __init__(self, function, args: tuple, kwargs: dict):
        self.call = (functools.partial(function, **kwargs) if kwargs else function, args)

    def __reduce__(self):
        return self.call


def deferred(function, *args, **kwargs) -> bytes:
    """`function(*args, **kwargs)` as bytes that run it when unpickled. Every PatchLens task is
    submitted as `pickle.loads(deferred(...))`: the scheduler unpickles each task it receives, and this
    one names only `pickle.loads` and bytes, so a scheduler started with `dask scheduler` need not
    import PatchLens; the worker that runs the task does (it has the project on its path)."""
    return pickle.dumps(_Deferred(function, args, kwargs))


def submit_deferred(submitter, key: str, function, args: tuple = (), kwargs: dict | None = None, **options):
    """`submitter.submit` (a Dask client or its executor) of `function(*args, **kwargs)` as the task
    `key`, deferred (above); `options` are Dask's (pure, retries)."""
    return submitter.submit(pickle.loads, deferred(function, *args, **(kwargs or {})), key=key, **options)


def submit(folder: str | Path, function, *args, retries: int = 0, **kwargs):
    """Run `function(*args, **kwargs)` on a worker for the job in `folder`; returns its future, kept
    until it is done (a forgotten future would cancel the task)."""
    name = f"{getattr(function, '__name__', 'job')}-{Path(folder).name}-{uuid.uuid4().hex[:8]}"
    future = submit_deferred(client(), name, function, args, kwargs, pure=False, retries=retries)
    with _lock:
        _futures[str(folder)] = future
    future.add_done_callback(lambda done: _forget(str(folder), done))
    return future


def _forget(folder: str, future) -> None:
    with _lock:
        if _futures.get(folder) is future:
            del _futures[folder]


def pending(folder: str | Path) -> bool:
    """Whether this process has submitted a task for `folder` that is not done (queued, running, or
    being rerun after its worker died)."""
    with _lock:
        future = _futures.get(str(folder))
    return future is not None and not future.done()


def cancel(folder: str | Path) -> bool:
    """Cancel the task of `folder` if it has one not done; returns whether there was one. A task that
    has started runs on until it sees its stop request (Dask cannot interrupt a running task)."""
    with _lock:
        future = _futures.pop(str(folder), None)
    if future is None or future.done():
        return False
    future.cancel()
    return True


def submitted() -> list[str]:
    """The job folders whose tasks this process has submitted and are not done."""
    with _lock:
        return [folder for folder, future in _futures.items() if not future.done()]
