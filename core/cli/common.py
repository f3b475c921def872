"""What the command modules share: argument types, the arguments several commands take, and the
progress line they print on stderr."""

from __future__ import annotations

import argparse
import sys
import time

from core.constants import DEFAULT_THRESHOLD

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


def add_command(subparsers, name: str, handler, *, help: str, description: str) -> argparse.ArgumentParser:
    """The parser of the sub-command `name`, which runs `handler(args)`; the caller adds its arguments."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


def add_model_data_arguments(parser: argparse.ArgumentParser, *, labelled: bool) -> None:
    """The positional MODEL and DATA of a command that runs one model on one dataset."""
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("data", help=LABELLED_DATA_HELP if labelled else DATA_HELP)


def add_threshold_argument(parser: argparse.ArgumentParser) -> None:
    """--threshold T, the probability from which a patch is called tumour."""
    parser.add_argument(
        "--threshold",
        type=unit_interval,
        default=DEFAULT_THRESHOLD,
        help=f"predict tumour when prob >= T (default {DEFAULT_THRESHOLD})",
    )


class ProgressLine:
    """`\\r`-rewritten progress text on stderr, at most ~5 updates a second."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.started = time.monotonic()
        self.last = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        percent = 100.0 * done / total if total else 100.0
        rate = done / elapsed
        text = f"{self.verb} {done:,}/{total:,} patches ({percent:5.1f}%)  {rate:,.0f} patches/s"
        sys.stderr.write("\r" + text.ljust(self.width))  # pad: erase a longer previous line
        self.width = len(text)
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
