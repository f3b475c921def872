"""The PCam HDF5 layout: `camelyonpatch_level_2_split_<split>_{x,y}.h5` (+ optional `_meta.csv` with the
slide id `wsi`), read lazily as an HDF5Dataset."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.constants import IMAGE_SIZE, PATCH_SHAPE
from core.data.base import Dataset, HDF5Dataset, Problem
from core.errors import DatasetError
from core.files import modified_ns

PCAM_FILE = re.compile(r"^camelyonpatch_level_2_split_(?P<split>\w+?)_(?P<kind>x|y|meta)\.(?:h5|csv)$")


def _pcam_name(split: str, kind: str) -> str:
    return f"camelyonpatch_level_2_split_{split}_{kind}.{'csv' if kind == 'meta' else 'h5'}"


def open_pcam(folder: Path, splits: list[str]) -> Dataset:
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
    fingerprint = (str(folder.resolve()), len(ids), *(modified_ns(Path(f)) for f in x_files))
    return HDF5Dataset(
        folder, "pcam-hdf5", ids, labels_all, problems,
        groups=groups if has_groups else None, fingerprint=fingerprint,
        x_files=x_files, file_index=_concat(file_index, np.int32), rows=_concat(rows, np.int64),
    )  # fmt: skip


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


@contextmanager
def _pcam_array(h5py: Any, path: Path, key: str) -> Iterator[Any]:
    """The HDF5 dataset `key` of the file `path`, while the file is open; a DatasetError when the file
    cannot be read or has no `key`."""
    try:
        with h5py.File(path, "r") as handle:
            if key not in handle:
                raise DatasetError(
                    f"{path.name} has no dataset '{key}' (found: {', '.join(handle) or 'nothing'})."
                )
            yield handle[key]
    except OSError as error:
        raise DatasetError(f"{path.name} is not a readable HDF5 file ({error}).") from None


def _check_pcam_x(h5py: Any, x_path: Path) -> int:
    with _pcam_array(h5py, x_path, "x") as x:
        if x.ndim != 4 or x.shape[1:] != PATCH_SHAPE or x.dtype != np.uint8:
            raise DatasetError(
                f"{x_path.name}: 'x' has shape {x.shape} and dtype {x.dtype}; expected (N, {IMAGE_SIZE}, "
                f"{IMAGE_SIZE}, 3) uint8."
            )
        return int(x.shape[0])


def _read_pcam_y(h5py: Any, y_path: Path, n: int) -> np.ndarray:
    with _pcam_array(h5py, y_path, "y") as y:
        if y.shape[0:1] != (n,) or int(np.prod(y.shape[1:])) != 1 or y.dtype.kind not in "iub":
            raise DatasetError(
                f"{y_path.name}: 'y' has shape {y.shape} and dtype {y.dtype}; expected ({n}, 1, 1, 1) or ({n},) "
                "integers to match the x file."
            )
        return np.asarray(y[...]).reshape(n).astype(np.int64)


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
