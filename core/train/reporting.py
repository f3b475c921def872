"""How a running job reports: status.json with a heartbeat thread, and the progress line printed on a
terminal. The Keras callbacks that write metrics.jsonl during training are core.train.callbacks'."""

from __future__ import annotations

from core.formatting import ProgressLine
from core.jobs.status import JobReporter  # noqa: F401 (the one status.json writer of every job; was here)


def terminal_printer(stream=None):
    """The training's progress printer, show(text, newline=False): the one progress line of
    core.formatting, on `stream` (default sys.stderr as it is when printing)."""
    return ProgressLine(stream=stream).show
