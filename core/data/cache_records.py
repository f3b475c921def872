"""The record kept beside a derived cache file (`<key>.json` next to `<key>.csv` or `<key>.npz`) and
the check of a cache against it.

A cache is only ever a copy of something PatchLens can compute again, so a cache that disagrees with
its record is never used: the row count, unique ids, ids that belong to the dataset and a SHA-256 of
the cache file's bytes, all stored at write time, must match. Any disagreement, or a record that is
missing, unreadable or not the expected JSON object, raises DamagedCacheError with the reason in
words; the caller recomputes the cache and tells the user once.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import DamagedCacheError
from core.files import atomic_write_bytes, atomic_write_json

RECORD_SUFFIX = ".json"


class CacheRecomputedWarning(UserWarning):
    """A damaged cache was recomputed; the command line prints it as a note (core.cli.main)."""


@dataclass(frozen=True)
class CacheRecord:
    """What the record of a cache file says: its rows, the SHA-256 of its bytes, the patches that could
    not be read ({id: reason}) and the dataset's size when it was written."""

    rows: int
    sha256: str
    n: int
    skipped: dict[str, str]


def record_path(cache_file: str | Path) -> Path:
    return Path(cache_file).with_suffix(RECORD_SUFFIX)


def _count(info: dict, name: str, where: Path) -> int:
    value = info.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DamagedCacheError(f"its record {where.name} has no valid {name!r} (found {value!r})")
    return value


def read_cache_record(cache_file: str | Path) -> CacheRecord:
    """The validated record beside `cache_file`; DamagedCacheError when it is missing, not JSON, not an
    object, or lacks a field of the right type."""
    where = record_path(cache_file)
    try:
        info = json.loads(where.read_text())
    except FileNotFoundError:
        raise DamagedCacheError(f"its record {where.name} is missing") from None
    except (OSError, ValueError) as error:
        raise DamagedCacheError(f"its record {where.name} is not readable JSON ({error})") from None
    if not isinstance(info, dict):
        raise DamagedCacheError(f"its record {where.name} holds a {type(info).__name__}, not an object")
    sha256, skipped = info.get("sha256"), info.get("skipped", {})
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise DamagedCacheError(f"its record {where.name} has no content hash")
    if not isinstance(skipped, dict) or not all(isinstance(v, str) for v in skipped.values()):
        raise DamagedCacheError(f"its record {where.name} has a malformed 'skipped' list")
    return CacheRecord(
        rows=_count(info, "rows", where), sha256=sha256, n=_count(info, "n", where), skipped=skipped
    )


def write_cached_bytes(
    cache_file: str | Path, data: bytes, description: dict, *, rows: int, skipped: dict
) -> None:
    """Write a cache file and its record, each atomically: the record first (with the hash of `data`),
    then the file, so a file present always has the record that vouches for it."""
    cache_file = Path(cache_file)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    record = {**description, "rows": rows, "sha256": hashlib.sha256(data).hexdigest(), "skipped": skipped}
    atomic_write_json(record_path(cache_file), record)
    atomic_write_bytes(cache_file, data)


def check_cache_bytes(data: bytes, record: CacheRecord) -> None:
    """DamagedCacheError unless `data` hashes to what the record stored."""
    if hashlib.sha256(data).hexdigest() != record.sha256:
        raise DamagedCacheError("its content does not match the hash its record stored at write time")


def check_cache_ids(
    ids: Sequence[str], record: CacheRecord, dataset_ids: Sequence[str] | None = None
) -> None:
    """DamagedCacheError unless the cache has the record's row count, no repeated id, and (given the
    dataset's ids) only ids of the dataset, one row per patch that was not skipped."""
    unique = set(ids)
    repeated = len(ids) - len(unique)
    if repeated:
        raise DamagedCacheError(f"{repeated:,} of its ids appear more than once")
    if len(ids) != record.rows:
        raise DamagedCacheError(f"it holds {len(ids):,} rows but its record says {record.rows:,}")
    if dataset_ids is None:
        return
    if len(ids) + len(record.skipped) != len(dataset_ids):
        raise DamagedCacheError(
            f"it covers {len(ids) + len(record.skipped):,} patches but the dataset has {len(dataset_ids):,}"
        )
    foreign = unique.difference(dataset_ids)
    if foreign:
        raise DamagedCacheError(f"{len(foreign):,} of its ids are not in the dataset (e.g. {min(foreign)!r})")


def read_checked(
    cache_file: str | Path, parse: Callable[[bytes], object], ids_of: Callable, dataset_ids=None
) -> tuple[object, CacheRecord]:
    """(parsed content, record) of a cache file that agrees with its record: `parse(bytes)` turns the
    file into its content (any error it raises counts as damage) and `ids_of(content)` lists its ids
    for check_cache_ids; the hash is checked last, after the checks that name what is wrong in words."""
    record = read_cache_record(cache_file)
    data = Path(cache_file).read_bytes()
    try:
        content = parse(data)
    except (OSError, ValueError, KeyError) as error:
        raise DamagedCacheError(f"its content cannot be read ({error})") from None
    check_cache_ids(ids_of(content), record, dataset_ids)
    check_cache_bytes(data, record)
    return content, record


def discard_cache(cache_file: str | Path) -> None:
    """Remove a damaged cache file and its record (a cache is always recomputable)."""
    Path(cache_file).unlink(missing_ok=True)
    record_path(cache_file).unlink(missing_ok=True)


def damaged_message(cache_file: str | Path, reason: str) -> str:
    """The one sentence the user reads when a damaged cache is recomputed."""
    return (
        f"The cache {Path(cache_file).name} was damaged ({reason}); it was discarded and is computed again."
    )


def warn_recomputed(cache_file: str | Path, reason: str) -> str:
    """Say once (a CacheRecomputedWarning) that a damaged cache is being recomputed; returns the message."""
    message = damaged_message(cache_file, reason)
    warnings.warn(message, CacheRecomputedWarning, stacklevel=3)
    return message
