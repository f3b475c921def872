"""What runs inside an engine worker: warm-up, the model cache, and `python -m core …` as a task.

A worker imports TensorFlow once (in the background, as soon as it joins) and keeps the last models
its read-only commands loaded (bounded, keyed on the file's path, mtime_ns and size), so the second
job on a model starts at once. A job runs as the very command a separate process would run
(core.cli.run_local), its output appended to the job's log and the launching process's PATCHLENS_*
settings (workspace, data roots, …) in force while it runs. Workers run one task at a time per
thread; the settings and output are process-wide, hence the engine's one thread per worker.
"""

from __future__ import annotations

import importlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from core.tensorflow_import import import_tensorflow

SETTINGS_PREFIX = "PATCHLENS_"
NOT_PASSED = ("PATCHLENS_SCHEDULER",)  # a worker runs its task itself, never on another cluster
MODELS_KEPT = 2
ATTEMPT_FILE = ".engine-attempt"  # written when a task starts: a job run once sees a rerun by it
# Commands that only read their model: they may share the worker's cached copy. (Calibration folds a
# temperature into its model and training resumes into one: they always load their own.)
READ_ONLY_MODEL_COMMANDS = ("predict", "evaluate", "embed", "heatmap", "predict-job", "heatmap-job")


class ModelCache:
    """The last `size` models loaded in this process, by file identity (path, mtime_ns, size): a model
    file rewritten in place is loaded again."""

    def __init__(self, size: int = MODELS_KEPT):
        self.size = size
        self.models: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path, load):
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                return self.models[key]
        model = load(path)
        with self.lock:
            self.models[key] = model
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return model


_models = ModelCache()  # this worker's models, lent to core.model.io while a read-only command runs


@contextmanager
def models_cached(command: str) -> Iterator[None]:
    """core.model.io.load_model served from this worker's cache while `command` runs, if it only
    reads its model."""
    from core.model import io as model_io

    model_io.MODEL_CACHE = _models if command in READ_ONLY_MODEL_COMMANDS else None
    try:
        yield
    finally:
        model_io.MODEL_CACHE = None


class WarmWorker(WorkerPlugin):
    """Imports TensorFlow in the background as soon as a worker joins (the ~9 s every job would
    otherwise pay). A task arriving meanwhile waits for that import (core.tensorflow_import): two
    threads importing TensorFlow at once leave it broken for the life of the worker."""

    name = "patchlens-warm-worker"

    def setup(self, worker) -> None:
        threading.Thread(target=import_tensorflow, daemon=True, name="import-tensorflow").start()


def launching_settings() -> dict[str, str]:
    """The PATCHLENS_* settings of this (launching) process, for the job to run with."""
    return {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX) and k not in NOT_PASSED}


@contextmanager
def settings_in_force(settings: dict[str, str]) -> Iterator[None]:
    """Exactly `settings` as this process's PATCHLENS_* variables while the task runs."""
    before = {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}
    for name in before:
        os.environ.pop(name)
    os.environ.update(settings)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith(SETTINGS_PREFIX)]:
            os.environ.pop(name)
        os.environ.update(before)


def _command_line():
    """core.cli, named rather than imported: the command line is every job's entry (as `python -m core`
    was for their processes) and itself submits work to the engine."""
    return importlib.import_module("core.cli")


def run_command(arguments: list[str], log: str, settings: dict[str, str], *, once: bool = False) -> int:
    """`python -m core ARGUMENTS` in this worker, its output appended to `log`; returns its exit code.

    With `once`, a second attempt (Dask reruns the task of a worker that died) does not run it again:
    it says so in the log and returns 1, leaving the job's status to say what happened."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    attempt = Path(log).parent / ATTEMPT_FILE
    if once and attempt.exists():
        with open(log, "a") as handle:
            handle.write("error: the worker running this job was lost; it is not run again.\n")
        return 1
    attempt.write_text(str(os.getpid()))
    import_tensorflow()
    with settings_in_force(settings), models_cached(arguments[0]), open(log, "a", buffering=1) as handle:
        with redirect_stdout(handle), redirect_stderr(handle):
            return _command_line().run_local(arguments)


def run_parsed(args, settings: dict[str, str]) -> tuple[int, str, str]:
    """A command the client parsed (core.cli), run here; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    import_tensorflow()
    with settings_in_force(settings), models_cached(args.command), redirect_stdout(out), redirect_stderr(err):
        code = _command_line().run_arguments(args)
    return code, out.getvalue(), err.getvalue()
