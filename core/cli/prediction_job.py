"""The `predict-job` command: what the Evaluate page starts in its own process.

python -m core predict-job MODEL DATA [--key KEY] [--tta] [--features] [--cache-dir DIR]
    computes the cached predictions of MODEL on DATA (the file `python -m core evaluate` reads), or
    with --features the Feature map's features, reporting state and progress in
    <cache>/jobs/<KEY>/status.json (see core.evaluate.jobs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import add_command, add_model_data_arguments, job_key_argument


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "predict-job",
        run,
        help="cache a model's predictions on a dataset as a job the Evaluate page can follow",
        description="Compute and cache the predictions of MODEL on DATA, reporting progress in a job file.",
    )
    add_model_data_arguments(parser, labelled=False)
    parser.add_argument(
        "--key", type=job_key_argument, help="the job key the page waits on (hex; default: computed)"
    )
    parser.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations")
    parser.add_argument(
        "--features",
        action="store_true",
        help="cache the Feature map's penultimate-layer features instead (default cache: <workspace>/cache/features)",
    )
    parser.add_argument("--cache-dir", type=Path, help="the cache (default: <workspace>/cache/predictions)")


def run(args: argparse.Namespace) -> int:
    from core.evaluate.jobs import run_job

    status = run_job(
        args.model, args.data, key=args.key, tta=args.tta, features=args.features, cache_dir=args.cache_dir
    )
    if status.get("state") != "finished":  # the reason in one line; a bug's traceback is in the job's log
        print(f"{status.get('state')}: {status.get('error') or ''}".strip(), file=sys.stderr)
        return 1
    return 0
