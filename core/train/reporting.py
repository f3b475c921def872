"""How a running job reports: status.json with a heartbeat thread, and the progress line printed on a
terminal. The Keras callbacks that write metrics.jsonl during training are core.train.callbacks'."""

from __future__ import annotations

import threading
from pathlib import Path

from core.formatting import ProgressLine
from core.train.runs import HEARTBEAT_SECONDS, write_status


class JobReporter:
    """Owns status.json for one run: state, phase, progress, heartbeat (from a thread)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.lock = threading.Lock()
        self.fields: dict = {}
        self.state = "running"
        self.stop_reason: str | None = None
        self._beating = threading.Event()

    def update(self, state: str | None = None, **fields) -> None:
        with self.lock:
            if state:
                self.state = state
            self.fields.update(fields)
            write_status(self.run_dir, self.state, **self.fields)

    def start_heartbeat(self) -> None:
        def beat():
            while not self._beating.wait(HEARTBEAT_SECONDS):
                self.update()

        threading.Thread(target=beat, daemon=True, name="heartbeat").start()

    def stop_heartbeat(self) -> None:
        self._beating.set()


def terminal_printer(stream=None):
    """The training's progress printer, show(text, newline=False): the one progress line of
    core.formatting, on `stream` (default sys.stderr as it is when printing)."""
    return ProgressLine(stream=stream).show
