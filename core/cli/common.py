"""What the command modules share: argument types and the arguments several commands take (their
progress line on stderr is core.formatting.ProgressLine)."""

from __future__ import annotations

import argparse

from core.constants import DEFAULT_THRESHOLD, SCORING_BATCH_SIZE

MODEL_HELP = "a .keras model file or a run directory"
DATA_HELP = "a dataset folder or file (any layout)"
LABELLED_DATA_HELP = "a labelled dataset folder or file (any layout)"


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


def add_batch_size_argument(parser: argparse.ArgumentParser, what: str = "patches per batch") -> None:
    """--batch-size N, the patches (or tiles) of one forward pass."""
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=SCORING_BATCH_SIZE,
        help=f"{what} (default {SCORING_BATCH_SIZE})",
    )
