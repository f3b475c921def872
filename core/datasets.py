"""Open a dataset folder or file in any supported layout and read its patches.

`open_dataset(path)` detects the layout and returns a `Dataset`: ids, labels (or None), the
problems found, and ways to read one patch or a batch. Opening stays cheap on the full Kaggle set
(220,025 files): the folder is listed once and the CSV read, but no image is decoded. Decoding every
file is the explicit `dataset.scan()`; `open_checked(path)` opens and, for a dataset of at most
DECODE_AT_OPEN_MAX patches, scans at once, so its problem count is complete from the start.

Layouts
-------
kaggle        `<id>.tif` files (in `train/` or the folder itself) + a CSV with `id,label` columns
pcam-hdf5     `camelyonpatch_level_2_split_<split>_{x,y}.h5` (+ optional `_meta.csv` with `wsi`)
class-folders subfolders `0/` and `1/` (or `normal/` and `tumour/`/`tumor/`) of image files
unlabelled    a folder of image files with neither
cache         a `.h5` file written by `core.cache.prepare`

Bad items (a CSV id without a file, a file without a label, duplicate ids, labels other than 0/1,
empty files) are skipped and listed in `dataset.problems`; they never sink the dataset. In a PCam
folder where some splits have a `_y.h5` file and others do not, the unlabelled splits are skipped
with a problem (labels must mean the same for every item); if no split has one, the dataset is
unlabelled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.constants import IMAGE_EXTENSIONS, IMAGE_SIZE, PATCH_SHAPE
from core.errors import DatasetError, PatchError
from core.images import decode_patch

PREFERRED_CSV = "train_labels.csv"
CLASS_FOLDERS = {"0": 0, "1": 1, "normal": 0, "tumour": 1, "tumor": 1}
PCAM_FILE = re.compile(r"^camelyonpatch_level_2_split_(?P<split>\w+?)_(?P<kind>x|y|meta)\.(?:h5|csv)$")
SCAN_CHUNK = 256
# Below this many patches, starting worker processes (~0.5 s with spawn) costs more than it saves.
MIN_PARALLEL_PATCHES = 4096
# open_checked decodes every patch of a dataset this small at once, so the dashboard shows the true
# problem count from the first look. Measured on one busy core: 1,000 Kaggle TIFFs in 0.17 s (fast
# path), 1,000 PNGs in 1.2 s (Pillow); 2,000 patches therefore cost at most ~0.3 s (TIFF) to ~2 s (PNG).
DECODE_AT_OPEN_MAX = 2000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    """One item that was skipped, and why, in words a user understands."""

    item: str
    problem: str


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
        for indices, problems in map_chunks(self, _scan_chunk, chunks, workers=workers):
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
            Problem(self.ids[i], bad[i]) for i in sorted(bad) if self.ids[i] not in self._found_unreadable
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


# --- opening ----------------------------------------------------------------------------------


def open_dataset(path: str | Path) -> Dataset:
    """Detect the layout of `path` and open it without decoding any image.

    Raises DatasetError (one line) when the path does not exist, is not a recognised layout,
    or holds no patches.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist.")
    if path.is_file():
        dataset = _open_file(path)
    else:
        dataset = _open_folder(path)
    _refuse_if_empty(dataset)
    return dataset


def _refuse_if_empty(dataset: Dataset) -> None:
    if len(dataset) == 0:
        reasons = "; ".join(f"{p.item}: {p.problem}" for p in dataset.problems[:3])
        raise DatasetError(
            f"no readable patches in {dataset.path}" + (f" ({reasons})" if reasons else "") + "."
        )


def open_checked(path: str | Path, max_decode: int | None = None) -> Dataset:
    """`open_dataset`, then decode every patch (`scan`, one process) when there are at most
    `max_decode` (default DECODE_AT_OPEN_MAX) of them, so the problems of a small dataset are all
    known once it is open."""
    dataset = open_dataset(path)
    if len(dataset) <= (DECODE_AT_OPEN_MAX if max_decode is None else max_decode):
        dataset.scan(workers=1)
        _refuse_if_empty(dataset)
    return dataset


def _open_file(path: Path) -> Dataset:
    if path.suffix.lower() in (".h5", ".hdf5"):
        if PCAM_FILE.match(path.name):
            split = PCAM_FILE.match(path.name)["split"]
            return _open_pcam(path.parent, [split])
        from core.cache import open_cache

        return open_cache(path)
    if PCAM_FILE.match(path.name):
        return _open_pcam(path.parent, [PCAM_FILE.match(path.name)["split"]])
    raise DatasetError(
        f"{path.name} is a single file; open the folder that holds the patches "
        "(a Kaggle folder, PCam .h5 files, class folders 0/ and 1/, or a PatchLens cache .h5)."
    )


def _open_folder(path: Path) -> Dataset:
    entries = _list_folder(path)
    splits = sorted({m["split"] for name in entries if (m := PCAM_FILE.match(name)) and m["kind"] == "x"})
    if splits:
        return _open_pcam(path, splits)
    class_dirs = {
        name: label for name, label in CLASS_FOLDERS.items() if entries.get(name, (None, -1))[0] == "dir"
    }
    is_class_folders = bool(class_dirs) and set(class_dirs.values()) == {0, 1}
    # Class folders win over a CSV that labels no image beside it (e.g. an exported predictions.csv).
    if is_class_folders and not _has_images(path, entries):
        return _open_class_folders(path, class_dirs)
    csv_path = _labels_csv(path, entries)
    if csv_path is not None:
        return _open_kaggle(path, csv_path)
    if is_class_folders:
        return _open_class_folders(path, class_dirs)
    if any(_is_image(name) for name, (kind, _) in entries.items() if kind == "file"):
        return _open_unlabelled(path, entries)
    if entries.get("train", ("", 0))[0] == "dir":
        return _open_unlabelled(path / "train", _list_folder(path / "train"))
    raise DatasetError(
        f"{path} is not a recognised dataset: expected a Kaggle folder (images + id,label CSV), "
        "PCam camelyonpatch_*.h5 files, class folders 0/ and 1/, or a folder of .tif/.png/.jpg patches."
    )


def _list_folder(path: Path) -> dict[str, tuple[str, int]]:
    """{name: ("file" | "dir", size in bytes)} in one pass; hidden entries are ignored."""
    listing: dict[str, tuple[str, int]] = {}
    try:
        with os.scandir(path) as scan:
            for entry in scan:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        listing[entry.name] = ("dir", 0)
                    elif entry.is_file():
                        listing[entry.name] = ("file", entry.stat().st_size)
                except OSError:
                    continue
    except OSError as error:
        raise DatasetError(f"{path} could not be listed ({error.strerror or error}).") from None
    return listing


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if _is_image(name) else name


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# --- Kaggle -----------------------------------------------------------------------------------


def _labels_csv(folder: Path, entries: dict[str, tuple[str, int]]) -> Path | None:
    """The label CSV of a Kaggle folder: train_labels.csv, else any CSV with id and label columns.

    A CSV that sits next to images but has no id/label header is an error, not a silent
    unlabelled dataset: the user meant it to label the patches.
    """
    names = sorted(n for n, (kind, _) in entries.items() if kind == "file" and n.lower().endswith(".csv"))
    names.sort(key=lambda n: n.lower() != PREFERRED_CSV)
    if not names:
        return None
    for name in names:
        if _csv_columns(folder / name) is not None:
            return folder / name
    if PREFERRED_CSV in [n.lower() for n in names] or _has_images(folder, entries):
        first = folder / names[0]
        raise DatasetError(
            f"{first.name} has no 'id' and 'label' header (first line: {_first_line(first)!r}); "
            "a Kaggle label CSV starts with the line 'id,label'."
        )
    return None


def _has_images(folder: Path, entries: dict[str, tuple[str, int]]) -> bool:
    if entries.get("train", ("", 0))[0] == "dir":
        return True
    return any(_is_image(n) for n in entries)


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.readline().strip()[:80]
    except OSError:
        return ""


def _csv_columns(path: Path) -> tuple[int, int] | None:
    """Positions of the id and label columns in the CSV header, or None."""
    return _header_columns(_first_line(path))


def _header_columns(line: str) -> tuple[int, int] | None:
    header = [h.strip().lower() for h in next(csv.reader([line]), [])]
    if "id" in header and "label" in header:
        return header.index("id"), header.index("label")
    return None


def parse_labels_csv(text: str, *, name: str = "labels.csv") -> tuple[list[str], np.ndarray, list[Problem]]:
    """Parse a Kaggle label CSV: (unique ids in file order, int8 0/1 labels, problems).

    Header names are matched case- and whitespace-insensitively; extra columns are ignored;
    ids may carry an image extension. Rows with a label other than 0/1 are skipped; a repeated id
    keeps its first label when the repeats agree and is dropped when they disagree.
    Raises DatasetError when the header has no id and label columns.
    """
    text = text.removeprefix("\ufeff")
    try:
        return _parse_labels_rows(csv.reader(io.StringIO(text, newline="")), name)
    except csv.Error as error:
        raise DatasetError(f"{name} could not be parsed as CSV ({error}).") from None


def _parse_labels_rows(rows: Iterator[list[str]], name: str) -> tuple[list[str], np.ndarray, list[Problem]]:
    header = next(rows, None)
    columns = _header_columns(",".join(header)) if header else None
    if header is None or columns is None:
        first = ",".join(header or [])[:80]
        raise DatasetError(
            f"{name} has no 'id' and 'label' header (first line: {first!r}); "
            "a Kaggle label CSV starts with the line 'id,label'."
        )
    id_col, label_col = columns
    labels: dict[str, int] = {}
    conflicting: set[str] = set()
    problems: list[Problem] = []
    for line_no, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(id_col, label_col):
            problems.append(Problem(f"{name} line {line_no}", "row has no id or no label"))
            continue
        item = _stem(row[id_col].strip())
        if not item:
            problems.append(Problem(f"{name} line {line_no}", "empty id"))
            continue
        label = _parse_label(row[label_col])
        if label is None:
            problems.append(Problem(item, f"label {row[label_col].strip()!r} is not 0 or 1"))
            continue
        if item in labels:
            if labels[item] != label:
                conflicting.add(item)
                problems.append(
                    Problem(item, f"duplicate id in {name} with a different label (line {line_no}); dropped")
                )
            else:
                problems.append(Problem(item, f"duplicate id in {name} (line {line_no}); kept the first"))
            continue
        labels[item] = label
    ids = [item for item in labels if item not in conflicting]
    return ids, np.array([labels[i] for i in ids], dtype=np.int8), problems


def _parse_label(text: str) -> int | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None


def _open_kaggle(folder: Path, csv_path: Path) -> Dataset:
    try:
        text = csv_path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as error:
        raise DatasetError(f"{csv_path.name} could not be read ({error.strerror or error}).") from None
    ids, labels, problems = parse_labels_csv(text, name=csv_path.name)
    entries = _list_folder(folder)
    image_dir = folder
    if entries.get("train", ("", 0))[0] == "dir":
        image_dir = folder / "train"
        entries = _list_folder(image_dir)
    files = {}
    for name, (kind, size) in entries.items():
        if kind == "file" and _is_image(name):
            stem = _stem(name)
            if stem in files:
                problems.append(
                    Problem(stem, f"two files for one id ({files[stem][0]}, {name}); kept the first")
                )
                continue
            files[stem] = (name, size)
    keep_ids, keep_labels, paths = [], [], []
    for item, label in zip(ids, labels, strict=True):
        if item not in files:
            problems.append(Problem(item, "listed in CSV but no file"))
            continue
        name, size = files[item]
        if size == 0:
            problems.append(Problem(item, "empty file (0 bytes)"))
            continue
        keep_ids.append(item)
        keep_labels.append(label)
        paths.append(str(image_dir / name))
    mentioned = set(ids) | {p.item for p in problems}  # a file whose row was refused is reported once
    for stem in sorted(files.keys() - mentioned):
        problems.append(Problem(stem, f"file has no label in {csv_path.name}"))
    fingerprint = (str(folder.resolve()), len(files), _mtime(image_dir), _mtime(csv_path))
    return FileDataset(
        folder, "kaggle", keep_ids, np.array(keep_labels, dtype=np.int8), problems,
        files=paths, fingerprint=fingerprint,
    )  # fmt: skip


# --- class folders and unlabelled folders ----------------------------------------------------


def _open_class_folders(folder: Path, class_dirs: dict[str, int]) -> Dataset:
    found: dict[str, list[tuple[str, int]]] = {}  # id -> [(path, label)]
    problems: list[Problem] = []
    mtimes = [_mtime(folder)]
    for dirname, label in sorted(class_dirs.items()):
        sub = folder / dirname
        mtimes.append(_mtime(sub))
        for name, (kind, size) in sorted(_list_folder(sub).items()):
            if kind != "file" or not _is_image(name):
                continue
            if size == 0:
                problems.append(Problem(f"{dirname}/{name}", "empty file (0 bytes)"))
                continue
            found.setdefault(_stem(name), []).append((str(sub / name), label))
    ids, labels, files = [], [], []
    for item, copies in found.items():
        if len({label for _, label in copies}) > 1:
            where = ", ".join(Path(p).parent.name + "/" + Path(p).name for p, _ in copies)
            problems.append(Problem(item, f"in both classes ({where}); dropped"))
            continue
        if len(copies) > 1:
            problems.append(Problem(item, f"duplicate id ({len(copies)} files); kept the first"))
        ids.append(item)
        labels.append(copies[0][1])
        files.append(copies[0][0])
    fingerprint = (str(folder.resolve()), len(files), *mtimes)
    return FileDataset(
        folder,
        "class-folders",
        ids,
        np.array(labels, dtype=np.int8),
        problems,
        files=files,
        fingerprint=fingerprint,
    )


def _open_unlabelled(folder: Path, entries: dict[str, tuple[str, int]]) -> Dataset:
    problems: list[Problem] = []
    ids, files = [], []
    seen: dict[str, str] = {}
    for name, (kind, size) in sorted(entries.items()):
        if kind != "file" or not _is_image(name):
            continue
        stem = _stem(name)
        if size == 0:
            problems.append(Problem(name, "empty file (0 bytes)"))
            continue
        if stem in seen:
            problems.append(Problem(stem, f"two files for one id ({seen[stem]}, {name}); kept the first"))
            continue
        seen[stem] = name
        ids.append(stem)
        files.append(str(folder / name))
    fingerprint = (str(folder.resolve()), len(files), _mtime(folder))
    return FileDataset(folder, "unlabelled", ids, None, problems, files=files, fingerprint=fingerprint)


# --- PCam HDF5 --------------------------------------------------------------------------------


def _pcam_name(split: str, kind: str) -> str:
    return f"camelyonpatch_level_2_split_{split}_{kind}.{'csv' if kind == 'meta' else 'h5'}"


def _open_pcam(folder: Path, splits: list[str]) -> Dataset:
    import h5py

    parts = []  # (split, x path, n, labels or None, groups or None)
    problems: list[Problem] = []
    for split in splits:
        x_path = folder / _pcam_name(split, "x")
        if not x_path.is_file():
            raise DatasetError(f"{x_path.name} is missing next to the other PCam files in {folder}.")
        n = _check_pcam_x(h5py, x_path)
        y_path = folder / _pcam_name(split, "y")
        labels = _read_pcam_y(h5py, y_path, n) if y_path.is_file() else None
        groups = _read_pcam_meta(folder / _pcam_name(split, "meta"), n, problems)
        parts.append((split, str(x_path), n, labels, groups))

    labelled = [p for p in parts if p[3] is not None]
    if labelled and len(labelled) < len(parts):
        for split, _, n, labels, _ in parts:
            if labels is None:
                problems.append(
                    Problem(_pcam_name(split, "y"), f"missing: the {n} patches of split '{split}' skipped")
                )
        parts = labelled
    has_groups = all(p[4] is not None for p in parts)

    ids: list[str] = []
    groups: list[str] = []
    label_parts, file_index, rows = [], [], []
    for f, (split, _, n, labels, split_groups) in enumerate(parts):
        keep = np.ones(n, dtype=bool)
        if labels is not None:
            keep = (labels == 0) | (labels == 1)
            for row in np.flatnonzero(~keep)[:1000]:
                problems.append(Problem(f"{split}-{row}", f"label {int(labels[row])} is not 0 or 1"))
            label_parts.append(labels[keep].astype(np.int8))
        kept_rows = np.flatnonzero(keep)
        ids += [f"{split}-{row}" for row in kept_rows]
        if has_groups:
            groups += [split_groups[row] for row in kept_rows]
        file_index.append(np.full(len(kept_rows), f, dtype=np.int32))
        rows.append(kept_rows.astype(np.int64))
    labels_all = np.concatenate(label_parts) if labelled else None
    x_files = [p[1] for p in parts]
    fingerprint = (str(folder.resolve()), len(ids), *(_mtime(Path(f)) for f in x_files))
    return HDF5Dataset(
        folder, "pcam-hdf5", ids, labels_all, problems,
        groups=groups if has_groups else None, fingerprint=fingerprint,
        x_files=x_files, file_index=_concat(file_index, np.int32), rows=_concat(rows, np.int64),
    )  # fmt: skip


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


def _check_pcam_x(h5py: Any, x_path: Path) -> int:
    try:
        with h5py.File(x_path, "r") as handle:
            if "x" not in handle:
                raise DatasetError(
                    f"{x_path.name} has no dataset 'x' (found: {', '.join(handle) or 'nothing'})."
                )
            x = handle["x"]
            if x.ndim != 4 or x.shape[1:] != PATCH_SHAPE or x.dtype != np.uint8:
                raise DatasetError(
                    f"{x_path.name}: 'x' has shape {x.shape} and dtype {x.dtype}; expected (N, {IMAGE_SIZE}, "
                    f"{IMAGE_SIZE}, 3) uint8."
                )
            return int(x.shape[0])
    except OSError as error:
        raise DatasetError(f"{x_path.name} is not a readable HDF5 file ({error}).") from None


def _read_pcam_y(h5py: Any, y_path: Path, n: int) -> np.ndarray:
    try:
        with h5py.File(y_path, "r") as handle:
            if "y" not in handle:
                raise DatasetError(
                    f"{y_path.name} has no dataset 'y' (found: {', '.join(handle) or 'nothing'})."
                )
            y = handle["y"]
            if y.shape[0:1] != (n,) or int(np.prod(y.shape[1:])) != 1 or y.dtype.kind not in "iub":
                raise DatasetError(
                    f"{y_path.name}: 'y' has shape {y.shape} and dtype {y.dtype}; expected ({n}, 1, 1, 1) or ({n},) "
                    "integers to match the x file."
                )
            return np.asarray(y[...]).reshape(n).astype(np.int64)
    except OSError as error:
        raise DatasetError(f"{y_path.name} is not a readable HDF5 file ({error}).") from None


def _read_pcam_meta(meta_path: Path, n: int, problems: list[Problem]) -> list[str] | None:
    if not meta_path.is_file():
        return None
    try:
        with open(meta_path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
            if "wsi" not in fields:
                problems.append(Problem(meta_path.name, "no 'wsi' column; slide ids unavailable"))
                return None
            groups = [(row.get(fields["wsi"]) or "").strip() for row in reader]
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        problems.append(Problem(meta_path.name, f"could not be read ({error}); slide ids unavailable"))
        return None
    if len(groups) != n:
        problems.append(Problem(meta_path.name, f"{len(groups)} rows for {n} patches; slide ids unavailable"))
        return None
    return groups


# --- parallel work over chunks of a dataset --------------------------------------------------

_WORKER_DATASET: Dataset | None = None


def _init_worker(dataset: Dataset) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _scan_chunk(dataset: Dataset, indices: list[int]) -> tuple[list[int], dict[int, str]]:
    _, _, bad = dataset.read_tolerant(indices)
    return indices, bad


def _in_worker(job: tuple[Callable, list[int]]) -> Any:
    function, indices = job
    return function(_WORKER_DATASET, indices)


def map_chunks(
    dataset: Dataset,
    function: Callable[[Dataset, list[int]], Any],
    chunks: Iterable[list[int]],
    *,
    workers: int = 2,
    in_flight: int | None = None,
    min_parallel: int | None = None,
) -> Iterator[Any]:
    """Yield function(dataset, chunk) for each chunk, in order, from `workers` processes.

    Processes start with 'spawn' (safe when TensorFlow or threads live in the parent), get the
    dataset once, and at most `in_flight` chunks (default 2 per worker) are pending, so memory
    stays bounded whatever the dataset size. Runs inline with workers <= 1, a single chunk, or
    fewer than `min_parallel` (default MIN_PARALLEL_PATCHES) patches in all.
    """
    chunks = list(chunks)
    if (
        workers <= 1
        or len(chunks) <= 1
        or sum(map(len, chunks)) < (MIN_PARALLEL_PATCHES if min_parallel is None else min_parallel)
    ):
        for chunk in chunks:
            yield function(dataset, chunk)
        return
    limit = in_flight or 2 * workers
    with ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(dataset,),
    ) as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(_in_worker, (function, chunk)))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise DatasetError("a worker process died while reading patches; try --workers 1.") from None
        finally:
            for future in pending:
                future.cancel()


def _without_item(message: str, item: str) -> str:
    """'id (file.tif): reason' -> 'reason': a problem row's item already names the patch, so its
    problem stays short and never repeats the file name."""
    prefix = f"{item} ("
    if message.startswith(prefix) and "): " in message:
        return message[len(prefix) :].split("): ", 1)[1]
    return message


def content_hash(dataset: Dataset) -> str:
    """A short hash of what identifies the dataset's content (path, file count, mtimes)."""
    text = repr((dataset.layout, *dataset.fingerprint))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
