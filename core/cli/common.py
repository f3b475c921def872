"""What the command modules share: argument types and the arguments several commands take (their
progress line on stderr is core.formatting.ProgressLine)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.constants import DEFAULT_THRESHOLD, SCORING_BATCH_SIZE

MODEL_HELP = "a .keras model file or a run directory"
DATA_HELP = "a dataset folder or file (any layout)"
LABELLED_DATA_HELP = "a labelled dataset folder or file (any layout)"
RUN_MODEL_FILES = ("model.keras", "best.keras", "averaged.keras")  # a run's models: never an --out


def unit_interval(text: str) -> float:
    """An argparse type: a number in [0, 1] (a threshold, an opacity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value:g}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a batch size, a number of epochs)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def output_problem(path: Path) -> str | None:
    """Why `path` cannot be an output file (a folder, a run's model, not writable), or None."""
    if path.is_dir():
        return f"{path} is a folder; give the name of a file to write"
    if path.name in RUN_MODEL_FILES and (path.parent / "config.json").is_file():
        return f"{path} is a run's model; PatchLens never writes over it (choose another file)"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # a missing folder is created on writing, inside its nearest existing one
    if not folder.is_dir():
        return f"cannot write {path}: {folder} is a file, not a folder"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write {path}: permission denied"
    return None


def output_file(text: str) -> Path:
    """An argparse type for --out: a file that can be written, checked before any computation."""
    path = Path(text).expanduser()
    problem = output_problem(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path


def job_key_argument(text: str) -> str:
    """An argparse type: a job key (hex digits, core.evaluate.jobs.check_key), never a path."""
    from core.errors import InputError
    from core.evaluate.jobs import check_key

    try:
        return check_key(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_command(
    subparsers, name: str, handler, *, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """The parser of the sub-command `name`, which runs `handler(args)`; the caller adds its arguments."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


def add_model_data_arguments(parser: argparse.ArgumentParser, *, labelled: bool) -> None:
    """The positional MODEL and DATA of a command that runs one model on one dataset."""
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("data", help=LABELLED_DATA_HELP if labelled else DATA_HELP)


def add_threshold_argument(
    parser: argparse.ArgumentParser, meaning: str = "predict tumour when prob >= T"
) -> None:
    """--threshold T, the probability from which a patch (or a cell) is called tumour."""
    parser.add_argument(
        "--threshold",
        type=unit_interval,
        default=DEFAULT_THRESHOLD,
        help=f"{meaning} (default {DEFAULT_THRESHOLD})",
    )


def add_batch_size_argument(
    parser: argparse.ArgumentParser, what: str = "patches per batch", default: int = SCORING_BATCH_SIZE
) -> None:
    """--batch-size N, the patches (or tiles) of one forward pass."""
    parser.add_argument(
        "--batch-size", type=positive_int, default=default, help=f"{what} (default {default})"
    )


def add_uncertainty_argument(parser: argparse.ArgumentParser) -> None:
    """--uncertainty: score each tile with its 8 dihedral views and keep their spread (8x the compute)."""
    parser.add_argument(
        "--uncertainty",
        action="store_true",
        help="score each tile with its 8 flipped/rotated views (8x the compute) and keep their spread: "
        "spread.npy, a spread measurement per tile in tiles.geojson, n_uncertain_tumour in the summary",
    )
