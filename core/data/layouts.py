"""One reader per folder layout, and the detection of which one a path holds.

kaggle        `<id>.tif` files (in `train/` or the folder itself) + a CSV with `id,label` columns
class-folders subfolders `0/` and `1/` (or `normal/` and `tumour/`/`tumor/`) of image files
unlabelled    a folder of image files with neither
pcam-hdf5     detected here, read by core.data.pcam
cache         a `.h5` file written by `core.data.cache.prepare` (its reader is here, the writer there)

Bad items (a CSV id without a file, a file without a label, duplicate ids, labels other than 0/1,
empty files) are skipped and listed as problems; they never sink the dataset.

A folder's layouts are one table, FOLDER_LAYOUTS, tried in order: a new layout is one entry plus its
find and open functions. Parsing the Kaggle label CSV is core.data.labels_csv's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.constants import PATCH_SHAPE
from core.data.base import Dataset, FileDataset, HDF5Dataset, Problem, relative_name
from core.data.labels_csv import (  # noqa: F401  (parse_labels_csv, NO_HEADER: re-exported for callers)
    NO_HEADER,
    csv_columns,
    image_stem,
    is_image_name,
    parse_labels_csv,
)
from core.data.pcam import PCAM_FILE, open_pcam
from core.errors import DatasetError
from core.files import modified_ns

PREFERRED_CSV = "train_labels.csv"
CLASS_FOLDERS = {"0": 0, "1": 1, "normal": 0, "tumour": 1, "tumor": 1}
CACHE_MARK = "patchlens_cache"
CACHE_VERSION = 1
UNLABELLED = -1  # the label a cache stores for an unlabelled patch
NO_IMAGE_FILE = "id has no image file"  # a label CSV's row whose id no image file carries
MAX_SUBFOLDERS_LOOKED_AT = 50  # subfolders listed when a folder turns out to hold datasets, not patches
MAX_NAMED_DATASETS = 8  # of them named in the message


def open_file(path: Path) -> Dataset:
    """One file: a PCam split's file (its split, from the folder beside it) or a PatchLens cache .h5."""
    if pcam := PCAM_FILE.match(path.name):
        return open_pcam(path.parent, [pcam["split"]])
    if path.suffix.lower() in (".h5", ".hdf5"):
        return open_cache(path)
    raise DatasetError(
        f"{path.name} is a single file; open the folder that holds the patches "
        "(a Kaggle folder, PCam .h5 files, class folders 0/ and 1/, or a PatchLens cache .h5)."
    )


Listing = dict[str, tuple[str, int]]  # a folder's {name: ("file" | "dir", size in bytes)}
Opener = Callable[[], Dataset]


@dataclass(frozen=True)
class FolderLayout:
    """One entry of the layout table: its name, and `find(folder, listing)`, which returns how to open
    the folder in this layout (a function of no argument) when the folder holds it, else None."""

    name: str
    find: Callable[[Path, Listing], Opener | None]


def _find_pcam(path: Path, entries: Listing) -> Opener | None:
    splits = sorted({m["split"] for name in entries if (m := PCAM_FILE.match(name)) and m["kind"] == "x"})
    return partial(open_pcam, path, splits) if splits else None


def _class_dirs(entries: Listing) -> dict[str, int] | None:
    found = {
        name: label for name, label in CLASS_FOLDERS.items() if entries.get(name, (None, -1))[0] == "dir"
    }
    return found if set(found.values()) == {0, 1} else None


def _find_class_folders_alone(path: Path, entries: Listing) -> Opener | None:
    """Class folders with no image beside them, which win over a CSV that labels no image beside it
    (e.g. an exported predictions.csv)."""
    class_dirs = _class_dirs(entries)
    return (
        partial(_open_class_folders, path, class_dirs)
        if class_dirs and not _has_images(path, entries)
        else None
    )


def _find_kaggle(path: Path, entries: Listing) -> Opener | None:
    csv_path = _labels_csv(path, entries)
    return partial(_open_kaggle, path, csv_path) if csv_path is not None else None


def _find_class_folders(path: Path, entries: Listing) -> Opener | None:
    class_dirs = _class_dirs(entries)
    return partial(_open_class_folders, path, class_dirs) if class_dirs else None


def _find_unlabelled(path: Path, entries: Listing) -> Opener | None:
    if any(is_image_name(name) for name, (kind, _) in entries.items() if kind == "file"):
        return partial(_open_unlabelled, path, entries)
    if entries.get("train", ("", 0))[0] == "dir":
        return lambda: _open_unlabelled(path / "train", _list_folder(path / "train"))
    return None


FOLDER_LAYOUTS = (  # tried in this order; a new layout: one entry here, plus its find and open functions
    FolderLayout("pcam-hdf5", _find_pcam),
    FolderLayout("class-folders", _find_class_folders_alone),
    FolderLayout("kaggle", _find_kaggle),
    FolderLayout("class-folders", _find_class_folders),
    FolderLayout("unlabelled", _find_unlabelled),
)


def open_folder(path: Path) -> Dataset:
    """The dataset a folder holds, in the first layout of FOLDER_LAYOUTS that finds one there."""
    entries = _list_folder(path)
    for layout in FOLDER_LAYOUTS:
        opener = layout.find(path, entries)
        if opener is not None:
            return opener()
    raise DatasetError(
        f"{path} is not a recognised dataset: expected a Kaggle folder (images + id,label CSV), "
        "PCam camelyonpatch_*.h5 files, class folders 0/ and 1/, or a folder of .tif/.png/.jpg patches."
        + datasets_inside_note(path)
    )


def datasets_inside_note(folder: Path) -> str:
    """' This folder holds datasets: a/, b/ — open one of them.' when subfolders of `folder` are
    datasets themselves (a parent folder opened by mistake); '' otherwise."""
    found = datasets_inside(folder)
    if not found:
        return ""
    more = " …" if len(found) > MAX_NAMED_DATASETS else ""
    names = ", ".join(f"{name}/" for name in found[:MAX_NAMED_DATASETS])
    return f" This folder holds datasets: {names}{more} — open one of them."


def datasets_inside(folder: Path) -> list[str]:
    """The names of `folder`'s subfolders (at most MAX_SUBFOLDERS_LOOKED_AT) that hold a dataset of a
    known layout by their listing alone (nothing is read or decoded)."""
    subfolders = sorted(name for name, (kind, _) in _listed(folder).items() if kind == "dir")
    return [name for name in subfolders[:MAX_SUBFOLDERS_LOOKED_AT] if _looks_like_dataset(folder / name)]


def _listed(folder: Path) -> dict[str, tuple[str, int]]:
    try:
        return _list_folder(folder)
    except DatasetError:  # an unreadable subfolder is simply not a dataset to point to
        return {}


def _looks_like_dataset(folder: Path) -> bool:
    entries = _listed(folder)
    files = [name for name, (kind, _) in entries.items() if kind == "file"]
    dirs = {name for name, (kind, _) in entries.items() if kind == "dir"}
    classes = {label for name, label in CLASS_FOLDERS.items() if name in dirs}
    return (
        any(PCAM_FILE.match(name) or is_image_name(name) for name in files)
        or classes == {0, 1}
        or ("train" in dirs and any(n.lower().endswith(".csv") and csv_columns(folder / n) for n in files))
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
        if csv_columns(folder / name) is not None:
            return folder / name
    if PREFERRED_CSV in [n.lower() for n in names] or _has_images(folder, entries):
        raise DatasetError(NO_HEADER.format(name=names[0]))
    return None


def _has_images(folder: Path, entries: dict[str, tuple[str, int]]) -> bool:
    if entries.get("train", ("", 0))[0] == "dir":
        return True
    return any(is_image_name(n) for n in entries)


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
        if kind == "file" and is_image_name(name):
            stem = image_stem(name)
            if stem in files:
                problems.append(
                    Problem(stem, f"two files for one id ({files[stem][0]}, {name}); kept the first")
                )
                continue
            files[stem] = (name, size)
    keep_ids, keep_labels, paths = [], [], []
    for item, label in zip(ids, labels, strict=True):
        if item not in files:
            problems.append(Problem(item, NO_IMAGE_FILE, listed_in=csv_path.name))
            continue
        name, size = files[item]
        if size == 0:
            problems.append(
                Problem(item, "empty file (0 bytes)", file=relative_name(image_dir / name, folder))
            )
            continue
        keep_ids.append(item)
        keep_labels.append(label)
        paths.append(str(image_dir / name))
    mentioned = set(ids) | {p.item for p in problems}  # a file whose row was refused is reported once
    for stem in sorted(files.keys() - mentioned):
        file = relative_name(image_dir / files[stem][0], folder)
        problems.append(Problem(stem, f"file has no label in {csv_path.name}", file=file))
    fingerprint = (str(folder.resolve()), len(files), modified_ns(image_dir), modified_ns(csv_path))
    return FileDataset(
        folder, "kaggle", keep_ids, np.array(keep_labels, dtype=np.int8), problems,
        files=paths, fingerprint=fingerprint,
    )  # fmt: skip


# --- class folders and unlabelled folders ----------------------------------------------------


def _open_class_folders(folder: Path, class_dirs: dict[str, int]) -> Dataset:
    found: dict[str, list[tuple[str, int]]] = {}  # id -> [(path, label)]
    problems: list[Problem] = []
    mtimes = [modified_ns(folder)]
    for dirname, label in sorted(class_dirs.items()):
        sub = folder / dirname
        mtimes.append(modified_ns(sub))
        for name, (kind, size) in sorted(_list_folder(sub).items()):
            if kind != "file" or not is_image_name(name):
                continue
            if size == 0:
                problems.append(Problem(f"{dirname}/{name}", "empty file (0 bytes)"))
                continue
            found.setdefault(image_stem(name), []).append((str(sub / name), label))
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
        if kind != "file" or not is_image_name(name):
            continue
        stem = image_stem(name)
        if size == 0:
            problems.append(Problem(name, "empty file (0 bytes)"))
            continue
        if stem in seen:
            problems.append(Problem(stem, f"two files for one id ({seen[stem]}, {name}); kept the first"))
            continue
        seen[stem] = name
        ids.append(stem)
        files.append(str(folder / name))
    fingerprint = (str(folder.resolve()), len(files), modified_ns(folder))
    return FileDataset(folder, "unlabelled", ids, None, problems, files=files, fingerprint=fingerprint)


# --- the PatchLens cache -------------------------------------------------------------------


def open_cache(path: str | Path) -> HDF5Dataset:
    """Open a cache written by `prepare` as a Dataset of layout "cache" (pixels read lazily)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            if int(handle.attrs.get(CACHE_MARK, 0)) != CACHE_VERSION:
                raise DatasetError(
                    f"{path.name} is an HDF5 file but not a PatchLens cache (made by `python -m core prepare`) "
                    "nor a PCam camelyonpatch_level_2_split_*_x.h5 file."
                )
            x = handle.get("x")
            if x is None or x.shape[1:] != PATCH_SHAPE or x.dtype != np.uint8:
                found = "nothing" if x is None else f"shape {x.shape}, dtype {x.dtype}"
                raise DatasetError(f"{path.name}: cache 'x' should be (N, 96, 96, 3) uint8; found {found}.")
            n = int(x.shape[0])
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in handle["ids"][...]]
            y = np.asarray(handle["y"][...], dtype=np.int8)
            groups = [s.decode() for s in handle["groups"][...]] if "groups" in handle else None
            problems = _stored_problems(handle)
            mtime = path.stat().st_mtime_ns
    except OSError as error:
        raise DatasetError(f"{path.name} is not a readable HDF5 file ({error}).") from None
    if len(ids) != n or len(y) != n:
        raise DatasetError(f"{path.name}: cache has {n} patches but {len(ids)} ids and {len(y)} labels.")
    labelled = y != UNLABELLED
    mixed = labelled.any() and not labelled.all()
    if mixed:  # keep the labelled part, say so
        problems.append(
            Problem(path.name, f"{int((~labelled).sum())} unlabelled patches in a labelled cache skipped")
        )
    dataset = HDF5Dataset(
        path, "cache", ids, y if labelled.any() else None, problems, groups=groups, fingerprint=(str(path.resolve()), n, mtime),
        x_files=[str(path)], file_index=np.zeros(n, dtype=np.int32), rows=np.arange(n, dtype=np.int64),
    )  # fmt: skip
    if mixed:
        dataset._keep(labelled)
    return dataset


def _stored_problems(handle) -> list[Problem]:
    if "problems" not in handle:
        return []
    raw = handle["problems"][()]
    try:
        items = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return [
            Problem(str(p["item"]), str(p["problem"]), str(p.get("file", "")), str(p.get("listed_in", "")))
            for p in items
        ]
    except (ValueError, KeyError, TypeError):
        return [Problem("problems", "the cache's problem list could not be read")]
