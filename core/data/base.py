"""The Dataset types every layout returns: ids, optional 0/1 labels, the problems met, and ways to read
one patch or a batch (`FileDataset`: one image file per patch; `HDF5Dataset`: rows of HDF5 files);
and how a page shows those problems without quoting a file's content (`shown_problems`).

Opening a path is core.data.dataset's job (it detects the layout, core.data.layouts and core.data.pcam read
them); decoding every patch in parallel is core.data.scan's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.constants import PATCH_SHAPE
from core.data.images import decode_patch
from core.data.scan import SCAN_CHUNK, map_chunks, scan_chunk
from core.errors import PatchError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    """One item that was skipped, and why, in words a user understands.

    `file` is the patch's file relative to the dataset folder, when it has one ('train/x.tif': the
    item is its id, 'x'). `listed_in` names the file whose *content* the item comes from (a label
    CSV's id with no image beside it): the pages never show such an item, only how many there are
    and where (`shown_problems`); the command line, run with the user's own rights, lists them."""

    item: str
    problem: str
    file: str = ""
    listed_in: str = ""


class Dataset:
    """Patches with ids, optional 0/1 labels and the problems met while reading them.

    Subclasses say where a patch lives (`_read_one`) and how to name it (`source_of`).
    Items can only be removed (`_keep`), so ids, labels, groups and locations stay aligned.
    """

    def __init__(
        self,
        path: Path,
        layout: str,
        ids: list[str],
        labels: np.ndarray | None,
        problems: list[Problem],
        groups: list[str] | None = None,
        fingerprint: tuple = (),
    ) -> None:
        self.path = path
        self.layout = layout
        self.ids = ids
        self.labels = labels
        self.problems = problems
        self.groups = groups
        self.fingerprint = fingerprint  # what identifies this exact content (for cache names)
        self.scanned = False
        self._found_unreadable: set[str] = set()  # ids already listed by record_unreadable or scan

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"<Dataset {self.layout} {self.path} n={len(self)} problems={len(self.problems)}>"

    def read_patch(self, i: int) -> np.ndarray:
        """The patch at position i as a uint8 (96, 96, 3) array; PatchError if it is broken."""
        return self._read_one(self._check_index(i))

    def read_batch(self, indices: Sequence[int]) -> np.ndarray:
        """The patches at `indices` as one uint8 (n, 96, 96, 3) array; PatchError names a broken one."""
        indices = [self._check_index(i) for i in indices]
        batch = np.empty((len(indices), *PATCH_SHAPE), dtype=np.uint8)
        for k, i in enumerate(indices):
            batch[k] = self._read_one(i)
        return batch

    def describe(self) -> dict[str, Any]:
        """Counts a page or the CLI can show as they are."""
        labels = self.labels
        positives = int((labels == 1).sum()) if labels is not None else 0
        negatives = int((labels == 0).sum()) if labels is not None else 0
        return {
            "layout": self.layout,
            "n_patches": len(self),
            "n_labelled": positives + negatives,
            "n_positive": positives,
            "n_negative": negatives,
            "problems": [{"item": p.item, "problem": p.problem} for p in self.problems],
        }

    def source_of(self, i: int) -> str:
        raise NotImplementedError

    def file_of(self, i: int) -> str:
        """Patch i's file relative to the dataset folder ('' when patches are rows of a file)."""
        return ""

    def scan(self, workers: int = 2, progress: Progress | None = None) -> list[Problem]:
        """Decode every patch; drop the unreadable ones and add them to `problems`.

        Runs in `workers` processes when the dataset is large enough to repay starting them.
        Returns the problems this scan adds (a patch already listed by `record_unreadable` is
        dropped but not listed twice).
        """
        total = len(self)
        bad: dict[int, str] = {}
        chunks = [list(range(start, min(start + SCAN_CHUNK, total))) for start in range(0, total, SCAN_CHUNK)]
        done = 0
        if progress:
            progress(0, total)
        for indices, problems in map_chunks(self, scan_chunk, chunks, workers=workers):
            bad.update(problems)
            done += len(indices)
            if progress:
                progress(done, total)
        found = self._new_problems(bad)
        self._keep(np.array([i not in bad for i in range(total)], dtype=bool))
        self.scanned = True
        return found

    def record_unreadable(self, bad: dict[int, str]) -> list[Problem]:
        """List patches found unreadable while reading (e.g. one grid page) in `problems`, once each.

        They stay in the dataset (positions must not shift under a page being drawn) until `scan`
        drops them. Returns the problems added.
        """
        return self._new_problems(bad)

    def _new_problems(self, bad: dict[int, str]) -> list[Problem]:
        added = [
            Problem(self.ids[i], bad[i], file=self.file_of(i))
            for i in sorted(bad)
            if self.ids[i] not in self._found_unreadable
        ]
        self._found_unreadable.update(p.item for p in added)
        self.problems.extend(added)
        return added

    def read_tolerant(self, indices: Sequence[int]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """Read what can be read: (patches, the indices they belong to, {index: problem})."""
        batch = np.empty((len(indices), *PATCH_SHAPE), dtype=np.uint8)
        good: list[int] = []
        bad: dict[int, str] = {}
        for i in indices:
            try:
                batch[len(good)] = self._read_one(i)
                good.append(i)
            except PatchError as error:
                bad[i] = _without_item(str(error), self.ids[i])
        return batch[: len(good)], good, bad

    # --- for subclasses ---

    def _read_one(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _keep(self, mask: np.ndarray) -> None:
        self.ids = [item for item, keep in zip(self.ids, mask, strict=True) if keep]
        if self.labels is not None:
            self.labels = self.labels[mask]
        if self.groups is not None:
            self.groups = [g for g, keep in zip(self.groups, mask, strict=True) if keep]

    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self.ids):
            raise IndexError(f"patch index {i} out of range for a dataset of {len(self.ids)} patches")
        return i


class FileDataset(Dataset):
    """One image file per patch (Kaggle, class folders, unlabelled folders)."""

    def __init__(self, *args: Any, files: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.files = files  # str, not Path: 220,000 of them pickle fast to worker processes

    def source_of(self, i: int) -> str:
        return self.files[self._check_index(i)]

    def file_of(self, i: int) -> str:
        return relative_name(self.files[self._check_index(i)], self.path)

    def _read_one(self, i: int) -> np.ndarray:
        return decode_patch(self.files[i], name=f"{self.ids[i]} ({Path(self.files[i]).name})")

    def _keep(self, mask: np.ndarray) -> None:
        super()._keep(mask)
        self.files = [f for f, keep in zip(self.files, mask, strict=True) if keep]


class HDF5Dataset(Dataset):
    """Patches stored as rows of `x` datasets in one or more HDF5 files (PCam, caches).

    Files are opened lazily, once per process, so the object can be pickled to workers.
    """

    def __init__(
        self, *args: Any, x_files: list[str], file_index: np.ndarray, rows: np.ndarray, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.x_files = x_files
        self.file_index = file_index  # which of x_files holds item i
        self.rows = rows  # its row in that file's `x`
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def source_of(self, i: int) -> str:
        i = self._check_index(i)
        return f"{Path(self.x_files[self.file_index[i]]).name}[{int(self.rows[i])}]"

    def scan(self, workers: int = 2, progress: Progress | None = None) -> list[Problem]:
        """HDF5 pixels were checked for shape and dtype when opened: nothing to decode."""
        if progress:
            progress(len(self), len(self))
        self.scanned = True
        return []

    def _read_one(self, i: int) -> np.ndarray:
        return self._x(int(self.file_index[i]))[int(self.rows[i])]

    def read_batch(self, indices: Sequence[int]) -> np.ndarray:
        indices = np.array([self._check_index(i) for i in indices], dtype=np.int64)
        batch = np.empty((len(indices), *PATCH_SHAPE), dtype=np.uint8)
        for f in np.unique(self.file_index[indices]):
            where = np.flatnonzero(self.file_index[indices] == f)
            rows = self.rows[indices[where]]
            batch[where] = _read_rows(self._x(int(f)), rows)
        return batch

    def read_tolerant(self, indices: Sequence[int]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        return self.read_batch(indices), list(indices), {}

    def _keep(self, mask: np.ndarray) -> None:
        super()._keep(mask)
        self.file_index = self.file_index[mask]
        self.rows = self.rows[mask]

    def _x(self, f: int):
        if self._pid != os.getpid():  # forked: never share an HDF5 handle across processes
            self._handles, self._pid = {}, os.getpid()
        if f not in self._handles:
            import h5py

            try:
                self._handles[f] = h5py.File(self.x_files[f], "r")["x"]
            except OSError as error:
                raise PatchError(f"{Path(self.x_files[f]).name}: could not be read ({error}).") from None
        return self._handles[f]


def _read_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """Rows of an HDF5 dataset in the given order.

    A contiguous run is one slice read; anything else is read row by row, which measured ~45x
    faster than h5py's fancy (point-list) indexing for a random batch of 256 rows.
    """
    batch = np.empty((len(rows), *PATCH_SHAPE), dtype=np.uint8)
    if len(rows) == 0:
        return batch
    start = int(rows[0])
    if np.array_equal(rows, np.arange(start, start + len(rows))):
        x.read_direct(batch, np.s_[start : start + len(rows)])
        return batch
    for k, row in enumerate(rows):
        batch[k] = x[int(row)]
    return batch


def _without_item(message: str, item: str) -> str:
    """'id (file.tif): reason' -> 'reason': a problem row's item already names the patch, so its
    problem stays short and never repeats the file name."""
    prefix = f"{item} ("
    if message.startswith(prefix) and "): " in message:
        return message[len(prefix) :].split("): ", 1)[1]
    return message


def relative_name(file: str | Path, folder: Path) -> str:
    """`file` relative to `folder` ('train/x.tif'); its bare name when it lies elsewhere."""
    try:
        return Path(file).relative_to(folder).as_posix()
    except ValueError:
        return Path(file).name


def shown_problems(problems: Sequence[Problem]) -> list[dict[str, str]]:
    """The rows a page shows for `problems`: a patch named by its file (with its extension), and the
    items a file's content names counted per file and problem, never quoted ('truth.csv' · '12 rows:
    listed in CSV but no image file'), since a CSV may hold anything."""
    counted: dict[tuple[str, str], int] = {}
    for p in problems:
        if p.listed_in:
            counted[(p.listed_in, p.problem)] = counted.get((p.listed_in, p.problem), 0) + 1
    rows = [
        {"item": listed_in, "problem": f"{n:,} row{'s' if n != 1 else ''}: {problem}"}
        for (listed_in, problem), n in counted.items()
    ]
    return rows + [{"item": p.file or p.item, "problem": p.problem} for p in problems if not p.listed_in]


def content_hash(dataset: Dataset) -> str:
    """A short hash of what identifies the dataset's content (path, file count, mtimes)."""
    text = repr((dataset.layout, *dataset.fingerprint))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
