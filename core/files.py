"""Files that are never half-written (write a temp file in the same folder, fsync, rename), and the one
modification-time helper.

A crash or a full disk leaves either the old file or the new one under the real name, never a
mixture, and never a stray temp file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file name in `path`'s folder, for writers that need a name (Keras, a zip archive): renamed
    over `path` when the block ends normally, removed when it raises, so `path` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; run files are meant to be read by others
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """An open temp file that becomes `path` (atomic_path) once written and fsynced."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (atomic_file)."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str).encode())


def read_json(path: str | Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def modified_ns(path: str | Path) -> int:
    """The file's modification time in nanoseconds, or 0 when it cannot be read: the one mtime helper,
    used in dataset fingerprints and as the cache key that reloads a changed file."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def atomic_write_csv(frame, path: str | Path) -> Path:
    """Write a pandas DataFrame as CSV (no index), atomically."""
    path = Path(path)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
    return path
