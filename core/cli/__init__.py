"""The command line (`python -m core …`): inspect|prepare|train|evaluate|predict|explain|predict-job|…|calibrate.

Each command lives in a small module with `register(subparsers)`; its handler returns an exit code.
Errors core raises on purpose (PatchLensError) end in a one-line message and exit status 2.
`predict`, `evaluate`, `embed`, `heatmap` and `label-issues` take `--scheduler ADDRESS` (or
PATCHLENS_SCHEDULER): the parsed command then runs on that Dask cluster's warm workers and this
process prints what they printed (core.cli.remote); without it every command runs in this process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from core.data.cache_records import CacheRecomputedWarning
from core.errors import PatchLensError

COMMAND_MODULES = (
    "core.cli.data",
    "core.cli.train",
    "core.cli.evaluate",
    "core.cli.explain",
    "core.cli.prediction_job",
    "core.cli.embed",
    "core.cli.labels",
    "core.cli.compare",
    "core.cli.region",
    "core.cli.slides",
    "core.cli.calibrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="PatchLens command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    from core.cli.remote import add_scheduler_arguments

    add_scheduler_arguments(subparsers)
    return parser


def _notes_then(show_other):
    """A warnings.showwarning that prints a recomputed cache as one `note:` line on stderr and hands
    every other warning to `show_other`."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, CacheRecomputedWarning):
            print(f"note: {message}", file=sys.stderr)
        else:
            show_other(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    """`python -m core ARGV`: on the cluster the command names (--scheduler), else in this process."""
    args = build_parser().parse_args(argv)
    from core.cli.remote import run_remote, scheduler_of

    address = scheduler_of(args)
    return _run(lambda: run_remote(args, address)) if address else run_arguments(args)


def run_local(argv: list[str]) -> int:
    """`python -m core ARGV` in this process whatever --scheduler says (what an engine worker runs)."""
    return run_arguments(build_parser().parse_args(argv))


def run_arguments(args: argparse.Namespace) -> int:
    """Run a parsed command in this process: its exit code, a recomputed cache as a `note:` line."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", CacheRecomputedWarning)
        warnings.showwarning = _notes_then(warnings.showwarning)
        return _run(lambda: args.handler(args))


def _run(command) -> int:
    """`command()`'s exit code; an error core raises on purpose, or an OSError, as one line (exit 2)."""
    try:
        return int(command() or 0)
    except PatchLensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a permission problem: say what and where, no traceback
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
