"""How the pages and the CLI show things: metrics and intervals, names shortened for a caption, and the
pages of a long list."""

from __future__ import annotations

import numpy as np

from core.errors import InputError

NAME_IN_TEXT = 36  # characters of a file name shown in a page's text column (short_name)


def format_metric(value: float | None, digits: int = 3) -> str:
    """A metric for a card: fixed digits, or an em dash when undefined."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def format_interval(interval: tuple[float, float] | None, digits: int = 3) -> str:
    if interval is None:
        return "95 % CI undefined"
    return f"95 % CI {interval[0]:.{digits}f}–{interval[1]:.{digits}f}"


def page_bounds(n_items: int, page: int, page_size: int) -> tuple[int, int, int]:
    """(start, stop, n_pages) of 1-based `page`; a page past the end is clamped to the last."""
    if page_size < 1:
        raise InputError(f"page_size must be positive; got {page_size}.")
    n_pages = max(1, -(-n_items // page_size))
    page = min(max(int(page), 1), n_pages)
    start = (page - 1) * page_size
    return start, min(start + page_size, n_items), n_pages


def short_name(name: str, limit: int = 20) -> str:
    """`name` cut in the middle with an ellipsis to at most `limit` characters, keeping its
    extension whole (e.g. 'f38a6374c348f90b…d9c.tif'), so a caption never breaks inside one."""
    if len(name) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 5:
        stem, extension = name, ""
    tail = f".{extension}" if extension else ""
    room = max(limit - len(tail) - 1, 2)
    head = (room + 1) // 2
    return f"{stem[:head]}…{stem[len(stem) - (room - head) :]}{tail}"
