"""Images uploaded on the Region page: where they are kept, under which name, and for how long.

An upload is saved under <workspace>/uploads/region/<content hash>/<name> (the workspace is a data
root, so the job and a reload find it by path), atomically, under a name cut to MAX_NAME_BYTES of
UTF-8 (a 200-character Unicode name gave ENAMETOOLONG). It is then opened like any region image:
a refused file (unreadable, or over the decode budget) is deleted at once and its error raised.
Retention (core.settings): uploads older than the retention period are deleted at the next upload,
then the oldest until the folder is under its size cap; an upload a running heatmap job reads, or
the one just made, is never deleted.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import unicodedata
from pathlib import Path

from core.errors import StorageError
from core.files import atomic_write_bytes
from core.settings import region_upload_retention, workspace_dir

MAX_NAME_BYTES = 120  # of the saved file name; file systems allow 255
HASH_CHARS = 16


def uploads_dir() -> Path:
    return workspace_dir() / "uploads" / "region"


def safe_name(name: str) -> str:
    """`name` without folders or control characters, cut to MAX_NAME_BYTES of UTF-8, suffix kept."""
    base = "".join(ch for ch in Path(str(name).replace("\\", "/")).name if unicodedata.category(ch)[0] != "C")
    base = base.strip().lstrip(".") or "upload"
    suffix = Path(base).suffix if len(Path(base).suffix.encode()) <= 16 else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    budget = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore") or "upload"  # never cut a character in two
    return stem + suffix


def save_upload(name: str, data: bytes, *, in_use: set[str] = frozenset()) -> Path:
    """Save an upload, check it opens as a region image (else delete it and raise RegionImageError),
    and apply the retention rule to the others (`in_use`: paths running jobs read). Returns its path."""
    from core.region.reader import open_region_image

    folder = uploads_dir() / hashlib.sha256(data).hexdigest()[:HASH_CHARS]
    path = folder / safe_name(name)
    try:
        if path.is_file():
            path.touch()  # uploaded again: kept as long as a new upload
        else:
            atomic_write_bytes(path, data)
        open_region_image(path).close()
    except OSError as error:  # a full disk: say so without the server's paths
        shutil.rmtree(folder, ignore_errors=True)
        raise StorageError(
            f"{path.name}: the upload could not be saved ({error.strerror or error})."
        ) from None
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload is not kept
        raise
    prune_uploads(keep={str(folder), *(str(Path(p).parent) for p in in_use)})
    return path


def prune_uploads(*, keep: set[str] = frozenset(), now: float | None = None) -> list[Path]:
    """Delete uploads past the retention period, then the oldest until under the size cap, except the
    folders in `keep`; returns the folders deleted."""
    max_age, max_bytes = region_upload_retention()
    now = time.time() if now is None else now
    folders = sorted(_uploads(), key=lambda entry: entry[1])  # (folder, mtime, bytes), oldest first
    total = sum(size for _, _, size in folders)
    deleted = []
    for folder, modified, size in folders:
        if str(folder) in keep or (now - modified <= max_age and total <= max_bytes):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        deleted.append(folder)
    return deleted


def _uploads() -> list[tuple[Path, float, int]]:
    root = uploads_dir()
    found = []
    for folder in root.iterdir() if root.is_dir() else []:
        try:
            files = [f.stat() for f in folder.iterdir() if f.is_file()]
            found.append((folder, max((f.st_mtime for f in files), default=folder.stat().st_mtime),
                          sum(f.st_size for f in files)))  # fmt: skip
        except OSError:  # removed meanwhile
            continue
    return found
