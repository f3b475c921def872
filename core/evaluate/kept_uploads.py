"""The Predict page's batches of uploads, kept in the workspace by content, so a reload or a copied link
shows the same results again (a browser forgets a file uploader's files when the page reloads).

<workspace>/uploads/predict/<key>.zip holds a batch's files as uploaded, stored by position (a name may
be anything a browser sends) beside manifest.json with their names in upload order: one file, written
atomically (core.files), so a batch is there whole or not at all, with one fsync for a thousand patches.
The key is a hash of the names and contents, so the same batch is stored once. Only the KEPT_BATCHES
most recently used batches stay; older ones are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

from core.errors import InputError, StorageError
from core.files import atomic_path, modified_ns
from core.settings import workspace_dir

KEPT_BATCHES = 8  # at the page's 50 MB per file, a few hundred MB at the very most
MANIFEST = "manifest.json"
KEY_LENGTH = 20
BATCH_KEY = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
GONE = "The patches of this link are no longer kept (only the last {n} batches are): drop them again."


def batches_dir() -> Path:
    return workspace_dir() / "uploads" / "predict"


def batch_key(files: list[tuple[str, bytes]]) -> str:
    """The key of a batch of (name, bytes): a hash of every name and content, in order."""
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(hashlib.sha256(name.encode()).digest() + hashlib.sha256(data).digest())
    return digest.hexdigest()[:KEY_LENGTH]


def keep_batch(files: list[tuple[str, bytes]]) -> str:
    """Store a batch (once per content) and return its key; StorageError when the disk refuses."""
    key = batch_key(files)
    path = batches_dir() / f"{key}.zip"
    try:
        if path.is_file():
            os.utime(path)  # used again: the last to be removed
        else:
            with atomic_path(path, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
                archive.writestr(MANIFEST, json.dumps({"names": [name for name, _ in files]}))
                for position, (_, data) in enumerate(files):
                    archive.writestr(f"{position:05d}", data)
    except OSError as error:
        raise StorageError(
            f"the uploads could not be kept in the workspace ({error.strerror or error})."
        ) from None
    _remove_old_batches()
    return key


def kept_batch(key: str) -> list[tuple[str, bytes]]:
    """The (name, bytes) of the batch `key`; InputError when the key is not one or it is gone."""
    if not BATCH_KEY.match(str(key)):
        raise InputError("The link's batch of patches is not one this app made.")
    try:
        with zipfile.ZipFile(batches_dir() / f"{key}.zip") as archive:
            names = json.loads(archive.read(MANIFEST))["names"]
            return [(str(name), archive.read(f"{k:05d}")) for k, name in enumerate(names)]
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        raise InputError(GONE.format(n=KEPT_BATCHES)) from None


def _remove_old_batches() -> None:
    """Keep the KEPT_BATCHES batches used last."""
    batches = [path for path in batches_dir().glob("*.zip") if BATCH_KEY.match(path.stem)]  # not a temp file
    kept = sorted(batches, key=modified_ns, reverse=True)
    for path in kept[KEPT_BATCHES:]:
        path.unlink(missing_ok=True)
