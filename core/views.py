"""What the Evaluate, Predict and Mistakes pages show, as plain functions of stored predictions.

The pages stay thin: they pick a source and a threshold, then call these functions, which take
DataFrames, arrays and paths and return DataFrames, arrays and small dataclasses. Nothing here
imports Streamlit or TensorFlow, so every view is testable without a browser or a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.constants import LABEL_NAMES, SPLIT_WARNING
from core.errors import DatasetError, PatchError, PatchLensError
from core.evaluation import read_predictions
from core.images import decode_patch
from core.quality import FLAG_SEPARATOR, OK, quality_labels

VAL_PREDICTIONS = "val_predictions.csv"
# The four cells of the confusion matrix, as (true label, predicted label).
CELLS = {"TN": (0, 0), "FP": (0, 1), "FN": (1, 0), "TP": (1, 1)}
CELL_NAMES = {
    "TN": "true negatives (normal, called normal)",
    "FP": "false positives (normal, called tumour)",
    "FN": "false negatives (tumour, called normal)",
    "TP": "true positives (tumour, called tumour)",
}


# --------------------------------------------------------------------------- confusion cells


def confusion_cell(predictions: pd.DataFrame, threshold: float, cell: str) -> pd.DataFrame:
    """The labelled rows that fall in one confusion-matrix cell at `threshold`, most confident first.

    `confidence` = |prob - predicted class|: how far the score sits from the threshold's far side
    (1 = the model was certain of the call it made, right or wrong).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {list(CELLS)}; got {cell!r}.")
    truth, called = CELLS[cell]
    known = predictions[predictions["label"].notna()]
    predicted = (known["prob"] >= threshold).astype(int)
    rows = known[(known["label"] == truth) & (predicted == called)].copy()
    rows["confidence"] = (rows["prob"] - (1 - called)).abs()
    rows = rows.sort_values(["confidence", "id"], ascending=[False, True], kind="stable")
    return rows.reset_index(drop=True)


def clicked_cell(points: list[dict]) -> str | None:
    """The confusion cell a Plotly click selected, from st.plotly_chart's selection points.

    The matrix is drawn as one scatter trace of four markers in CELLS order, so a point's index
    names its cell; None when nothing (or something else) was clicked.
    """
    names = list(CELLS)
    for point in points:
        index = point.get("point_index", point.get("point_number"))
        if isinstance(index, int) and 0 <= index < len(names):
            return names[index]
    return None


# --------------------------------------------------------------------------- paging


def page_bounds(n_items: int, page: int, page_size: int) -> tuple[int, int, int]:
    """(start, stop, n_pages) of 1-based `page`; a page past the end is clamped to the last."""
    if page_size < 1:
        raise ValueError(f"page_size must be positive; got {page_size}.")
    n_pages = max(1, -(-n_items // page_size))
    page = min(max(int(page), 1), n_pages)
    start = (page - 1) * page_size
    return start, min(start + page_size, n_items), n_pages


def mistakes_csv(wrong: pd.DataFrame, sources: list[str]) -> bytes:
    """The Mistakes page's download: its rows plus where each patch lives, labels as integers 0/1."""
    export = wrong.assign(label=wrong["label"].astype(int), source=sources)
    return export.to_csv(index=False).encode()


# --------------------------------------------------------------------------- runs as sources


@dataclass(frozen=True)
class ValidationInfo:
    """Where a run's validation predictions came from, and the datasets that hold their patches."""

    separate: bool  # True: a dataset of its own; False: a random split of the training data
    patch_paths: tuple[str, ...]  # where the validation patches can be read, by id
    note: str  # one sentence for the page


def validation_info(config: dict) -> ValidationInfo:
    """Read a run's config.json (as a dict): separate validation dataset or random split."""
    val_data = config.get("val_data")
    data = config.get("data") or []
    data = [data] if isinstance(data, str) else list(data)
    if val_data:
        note = f"The validation set is a separate dataset: {val_data}."
        return ValidationInfo(separate=True, patch_paths=(str(val_data),), note=note)
    fraction = config.get("val_fraction")
    share = f" ({100 * float(fraction):.0f} %)" if fraction else ""
    note = f"The validation set is a random patch-level split{share} of the training data. {SPLIT_WARNING}"
    return ValidationInfo(separate=False, patch_paths=tuple(str(d) for d in data), note=note)


def run_predictions_path(run_dir: str | Path) -> Path | None:
    """The run's stored validation predictions, or None when it has none (yet)."""
    path = Path(run_dir) / VAL_PREDICTIONS
    return path if path.is_file() else None


def load_run_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A run's val_predictions.csv as id,label,prob; DatasetError with the reason when unreadable."""
    path = run_predictions_path(run_dir)
    if path is None:
        raise DatasetError(f"Run {Path(run_dir).name} has no {VAL_PREDICTIONS} yet (is it finished?).")
    try:
        frame = read_predictions(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{path} could not be read as predictions ({error}).") from None
    if frame["label"].isna().all():
        raise DatasetError(f"{path} holds no labels, so nothing can be evaluated.")
    return frame


def training_overlap_note(model_config: dict | None, dataset_path: str | Path) -> str | None:
    """A warning when the dataset being evaluated is one the model was trained on, else None."""
    if not model_config:
        return None
    target = Path(dataset_path).resolve()
    data = model_config.get("data") or []
    data = [data] if isinstance(data, str) else data
    if any(Path(d).resolve() == target for d in data):
        if model_config.get("val_data"):
            return (
                f"{target.name} is this model's TRAINING data: these numbers measure fit, not "
                "generalisation. Evaluate on its validation dataset or the run's own predictions."
            )
        return (
            f"{target.name} is this model's training data: most of these patches were trained on "
            "(only a random fraction was held out), so the numbers are far too optimistic. "
            "Use the run's own validation predictions instead."
        )
    return None


# --------------------------------------------------------------------------- patches by id


class PatchLookup:
    """Read patches by id from one or more datasets (e.g. the data a run was trained on).

    Datasets that cannot be opened are skipped and named in `problems`, so a run whose data
    moved still shows its tables, just without images.
    """

    def __init__(self, paths: list[str] | tuple[str, ...]) -> None:
        from core.datasets import open_dataset

        self.datasets = []
        self.problems: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for path in paths:
            try:
                dataset = open_dataset(path)
            except (PatchLensError, OSError) as error:
                self.problems.append(f"{path}: {error}")
                continue
            number = len(self.datasets)
            self.datasets.append(dataset)
            for index, item in enumerate(dataset.ids):
                self._where.setdefault(item, (number, index))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item: str) -> bool:
        return item in self._where

    def source_of(self, item: str) -> str:
        """Where the patch lives (a file, or an HDF5 file and row); '' when unknown."""
        if item not in self._where:
            return ""
        number, index = self._where[item]
        return self.datasets[number].source_of(index)

    def read(self, ids: list[str]) -> tuple[np.ndarray, list[str], dict[str, str]]:
        """(patches, the ids they belong to, {id: why it could not be read})."""
        patches: list[np.ndarray] = []
        found: list[str] = []
        missing: dict[str, str] = {}
        for item in ids:
            if item not in self._where:
                missing[item] = "not found in the datasets this source points to"
                continue
            number, index = self._where[item]
            try:
                patches.append(self.datasets[number].read_patch(index))
            except (PatchError, OSError) as error:
                missing[item] = str(error)
                continue
            found.append(item)
        stack = np.stack(patches) if patches else np.empty((0, 96, 96, 3), dtype=np.uint8)
        return stack, found, missing


def dataset_lookup(dataset) -> PatchLookup:
    """A PatchLookup over one dataset that is already open (no second open)."""
    lookup = PatchLookup([])
    lookup.datasets.append(dataset)
    for index, item in enumerate(dataset.ids):
        lookup._where.setdefault(item, (0, index))
    return lookup


# --------------------------------------------------------------------------- uploads


@dataclass
class UploadBatch:
    """Uploaded files decoded in memory: the good patches, stacked, their input-quality labels
    (core.quality: 'ok' or the flags joined by ';'), and a reason per bad file."""

    names: list[str] = field(default_factory=list)
    patches: np.ndarray = field(default_factory=lambda: np.empty((0, 96, 96, 3), dtype=np.uint8))
    digests: list[str] = field(default_factory=list)
    quality: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason without the name)


def decode_uploads(files: list[tuple[str, bytes]]) -> UploadBatch:
    """Decode each (name, bytes) with core.images.decode_patch and judge the good ones with the
    input-quality gate; a bad file never stops the others."""
    batch = UploadBatch()
    good: list[np.ndarray] = []
    for name, data in files:
        try:
            patch = decode_patch(data, name=name)
        except PatchError as error:  # the name is kept beside the reason, not repeated inside it
            batch.errors.append((name, getattr(error, "reason", str(error))))
            continue
        good.append(patch)
        batch.names.append(name)
        batch.digests.append(hashlib.sha256(data).hexdigest()[:16])
    if good:
        batch.patches = np.stack(good)
        batch.quality = quality_labels(batch.patches)
    return batch


def call_of(prob: float, threshold: float) -> str:
    """The class name called at `threshold` (tumour when prob >= threshold)."""
    return LABEL_NAMES[int(prob >= threshold)]


def quality_flags(label: str) -> list[str]:
    """The flags of a quality label ('ok' → none)."""
    return [] if label == OK else label.split(FLAG_SEPARATOR)


def upload_results(batch: UploadBatch, probs: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row per uploaded file: file, probability, call at `threshold`, quality, problem (bad files).

    A flagged patch (quality not 'ok') keeps its probability but gets no call: the model's answer
    on it is not meaningful, and its `quality` column says why.
    """
    quality = batch.quality or [OK] * len(batch.names)
    rows = [
        {
            "file": name,
            "probability": float(p),
            "call": call_of(p, threshold) if label == OK else "",
            "quality": label,
            "problem": "",
        }
        for name, p, label in zip(batch.names, np.asarray(probs, dtype=float), quality, strict=True)
    ]
    rows += [
        {"file": name, "probability": np.nan, "call": "", "quality": "", "problem": reason}
        for name, reason in batch.errors
    ]
    return pd.DataFrame(rows, columns=["file", "probability", "call", "quality", "problem"])


def upload_counts(results: pd.DataFrame) -> dict[str, int]:
    """The Predict cards from an `upload_results` table: scored, called tumour / normal (ok patches
    only), flagged (scored but not ok), not readable."""
    scored = results["problem"] == ""
    calls = results.loc[scored, "call"]
    return {
        "scored": int(scored.sum()),
        "tumour": int((calls == LABEL_NAMES[1]).sum()),
        "normal": int((calls == LABEL_NAMES[0]).sum()),
        "flagged": int((results.loc[scored, "quality"] != OK).sum()),
        "unreadable": int((~scored).sum()),
    }


# --------------------------------------------------------------------------- formatting


def format_metric(value: float | None, digits: int = 3) -> str:
    """A metric for a card: fixed digits, or an em dash when undefined."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def format_interval(interval: tuple[float, float] | None, digits: int = 3) -> str:
    if interval is None:
        return "95 % CI undefined"
    return f"95 % CI {interval[0]:.{digits}f}–{interval[1]:.{digits}f}"
