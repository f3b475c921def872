"""`--scheduler ADDRESS`: a command parsed here, run on the warm workers of a Dask cluster.

The client only parses the arguments (no TensorFlow is imported here), makes every path in them
absolute (the workers see the same shared file system, not this process's folder), sends the parsed
command to a worker (core.jobs.worker.run_parsed) and prints what it printed, on the same streams,
and returns its exit code: the output and the files written are exactly the local run's.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.errors import InputError, RunError

CONNECT_TIMEOUT = "10s"  # how long to wait for the scheduler before saying it cannot be reached
REMOTE_COMMANDS = ("predict", "evaluate", "embed", "heatmap", "label-issues")
SCHEDULER_HELP = (
    "run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:port; default PATCHLENS_SCHEDULER); "
    "its workers must see the same files"
)


def add_scheduler_arguments(subparsers) -> None:
    """--scheduler on every command that may run on a cluster."""
    for name in REMOTE_COMMANDS:
        subparsers.choices[name].add_argument("--scheduler", metavar="ADDRESS", help=SCHEDULER_HELP)


def scheduler_of(args: argparse.Namespace) -> str | None:
    """The scheduler a parsed command runs on: its --scheduler, else PATCHLENS_SCHEDULER; None to run here."""
    if args.command not in REMOTE_COMMANDS:
        return None
    from core.settings import scheduler_address

    return getattr(args, "scheduler", None) or scheduler_address()


def run_remote(args: argparse.Namespace, address: str) -> int:
    """Run the parsed command on the cluster at `address`; print its output; return its exit code."""
    import uuid

    from distributed import Client

    from core.jobs.engine import submit_deferred
    from core.jobs.worker import launching_settings, run_parsed

    args = absolute_paths(args)
    args.scheduler = None
    try:
        with Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT) as client:
            key = f"run_parsed-{args.command}-{uuid.uuid4().hex[:8]}"  # the scheduler needs no PatchLens
            task = submit_deferred(client, key, run_parsed, (args, launching_settings()), retries=1)
            code, out, err = task.result()
    except (OSError, TimeoutError) as error:
        raise InputError(f"the Dask scheduler at {address} cannot be reached: {error}") from error
    except Exception as error:  # the workers could not run it (another code version, a lost worker…)
        raise RunError(
            f"the cluster at {address} could not run the command: {type(error).__name__}: {error}"
        ) from error
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of `args` with every Path, and every text naming an existing file, made absolute."""
    copied = argparse.Namespace(**vars(args))
    for name, value in vars(copied).items():
        if name != "command":
            setattr(
                copied, name, [_absolute(v) for v in value] if isinstance(value, list) else _absolute(value)
            )
    return copied


def _absolute(value):
    if isinstance(value, Path):
        return value.expanduser().absolute()
    if isinstance(value, str) and value and os.path.exists(os.path.expanduser(value)):
        return str(Path(value).expanduser().absolute())
    return value
