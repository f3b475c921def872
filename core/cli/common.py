"""What the command modules share: argument types and the progress line they print on stderr."""

from __future__ import annotations

import argparse
import sys
import time


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
    """An argparse type: an integer of at least 1 (a batch size, a count)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


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
