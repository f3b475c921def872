"""How the pages and the CLI show things: metrics and intervals, names and patch ids shortened for a caption (never into another id), the
pages of a long list, and the one progress line the command line and training rewrite on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from core.constants import FLAG_SEPARATOR
from core.errors import InputError

NAME_IN_TEXT = 36  # characters of a file name shown in a page's text column (short_name)
ID_IN_CAPTION = 24  # characters of a patch id under a gallery image (short_id), cut in the middle beyond
ELLIPSIS = "…"
FLAG_WORDS = {"not_he": "not H&E"}  # a quality flag's words where its name's are not enough


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
    return f"{stem[:head]}{ELLIPSIS}{stem[len(stem) - (room - head) :]}{tail}"


def short_id(item: str, limit: int = ID_IN_CAPTION) -> str:
    """A patch id as every caption, table and tile shows it: whole when it fits in `limit` characters,
    else cut in the middle with "…" (short_name). Never cut at the end: 'test-2152' cut to 8 characters
    reads 'test-215', another patch of the same dataset; a cut id always carries the ellipsis."""
    return short_name(str(item), limit)


def quality_words(label: str) -> str:
    """A quality label in words for a page: 'not_he;blurred;out_of_distribution' reads
    'not H&E, blurred, out of distribution' ('ok' stays 'ok'). Files and CSVs keep the label."""
    flags = [flag.strip() for flag in str(label).split(FLAG_SEPARATOR) if flag.strip()]
    return ", ".join(FLAG_WORDS.get(flag, flag.replace("_", " ")) for flag in flags)


class ProgressLine:
    """One line of progress on stderr, rewritten in place with `\\r`.

    `show(text)` writes any text over the line (padded to erase a longer one; `newline` ends it).
    Called as `(done, total)` it is a progress callback: "<verb> done/total patches (p%)  rate patches/s",
    at most ~5 times a second, ending the line at done == total. The stream is sys.stderr as it is when
    writing unless one is given (a test's captured stream may be closed by a later call).
    """

    def __init__(self, verb: str = "", stream: TextIO | None = None) -> None:
        self.verb, self.stream = verb, stream
        self.started = time.monotonic()
        self.last = 0.0
        self.width = 0  # of the text on the open line; 0 when no line is open

    def show(self, text: str, newline: bool = False) -> None:
        out = self.stream or sys.stderr
        out.write("\r" + text.ljust(self.width) + ("\n" if newline else ""))
        out.flush()
        self.width = 0 if newline else max(len(text), 1)

    def finish(self) -> None:
        """End the open line, if any (for a count that may stop short of its total)."""
        if self.width:
            out = self.stream or sys.stderr
            out.write("\n")
            out.flush()
            self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        percent = 100.0 * done / total if total else 100.0
        rate = done / max(now - self.started, 1e-9)
        text = f"{self.verb} {done:,}/{total:,} patches ({percent:5.1f}%)  {rate:,.0f} patches/s"
        self.show(text, newline=done >= total)
