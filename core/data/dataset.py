"""Open a dataset folder or file in any supported layout and read its patches.

`open_dataset(path)` detects (core.data.layouts) the layout and returns a `Dataset`: ids, labels (or None), the
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
cache         a `.h5` file written by `core.data.cache.prepare`

Bad items (a CSV id without a file, a file without a label, duplicate ids, labels other than 0/1,
empty files) are skipped and listed in `dataset.problems`; they never sink the dataset. In a PCam
folder where some splits have a `_y.h5` file and others do not, the unlabelled splits are skipped
with a problem (labels must mean the same for every item); if no split has one, the dataset is
unlabelled.
"""

from __future__ import annotations

from pathlib import Path

from core.data.base import Dataset, FileDataset, HDF5Dataset, Problem, Progress, content_hash, shown_problems
from core.data.layouts import datasets_inside_note, open_file, open_folder
from core.errors import DatasetError

__all__ = [
    "DECODE_AT_OPEN_MAX",
    "Dataset",
    "FileDataset",
    "HDF5Dataset",
    "Problem",
    "Progress",
    "content_hash",
    "open_checked",
    "open_dataset",
]

# open_checked decodes every patch of a dataset this small at once, so the dashboard shows the true
# problem count from the first look. Measured on one busy core: 1,000 Kaggle TIFFs in 0.17 s (fast
# path), 1,000 PNGs in 1.2 s (Pillow); 2,000 patches therefore cost at most ~0.3 s (TIFF) to ~2 s (PNG).
DECODE_AT_OPEN_MAX = 2000


def open_dataset(path: str | Path) -> Dataset:
    """Detect the layout of `path` and open it without decoding any image.

    Raises DatasetError (one line) when the path does not exist, is not a recognised layout,
    or holds no patches.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist.")
    if path.is_file():
        dataset = open_file(path)
    else:
        dataset = open_folder(path)
    _refuse_if_empty(dataset)
    return dataset


def _refuse_if_empty(dataset: Dataset) -> None:
    """No patch: say why in the pages' words (a CSV's ids counted, never quoted) and, for a folder
    whose subfolders are datasets, which ones to open instead."""
    if len(dataset) == 0:
        reasons = "; ".join(
            f"{row['item']} — {row['problem']}" for row in shown_problems(dataset.problems)[:3]
        )
        inside = datasets_inside_note(dataset.path) if dataset.path.is_dir() else ""
        raise DatasetError(
            f"no readable patches in {dataset.path}" + (f" ({reasons})" if reasons else "") + "." + inside
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
