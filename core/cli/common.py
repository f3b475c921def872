"""Argument types shared by the command modules."""

from __future__ import annotations

import argparse


def unit_interval(text: str) -> float:
    """An argparse type: a number in [0, 1] (a threshold, an opacity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value:g}")
    return value
