"""The predictions frame and everything kept of it: its columns, the input-quality subsets, CSV files,
and the cache of a model's predictions on a dataset.

A set of predictions is a DataFrame with columns `id`, `label` (0/1, NaN when unknown) and `prob`
(the model's probability of tumour), and optionally `quality` (`ok` or the input-quality flags of
core.data.quality joined by `;`), which splits every view into all patches and the unflagged ones.
Predictions over a dataset are cached on disk, keyed by the model file and the dataset content, so
the Evaluate page runs the model once per (model, dataset) pair.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from core.constants import DEFAULT_THRESHOLD
from core.data.cache_records import DamagedCacheError, read_checked, warn_recomputed, write_cached_bytes
from core.data.quality import FLAG_SEPARATOR, OK, QUALITY_FLAGS
from core.errors import InputError
from core.evaluate.metrics import check_labels_probs, metrics_at
from core.evaluate.predict import DEFAULT_BATCH_SIZE, predict_dataset
from core.evaluate.uncertainty import SPREAD_COLUMN
from core.files import atomic_write_csv

PREDICTION_COLUMNS = ("id", "label", "prob")
QUALITY_COLUMN = "quality"  # optional: `ok` or the patch's input-quality flags joined by `;`
ALL_QUALITIES = "all"  # the quality filter that keeps every patch
HEADLINE_METRICS = ("auc", "accuracy", "sensitivity", "specificity")
ALL_PATCHES = "all patches"
WITHOUT_FLAGGED = "without flagged patches"
CACHE_FORMAT = 5  # bump when the stored predictions change meaning (2: a `quality` column,
# 3: `out_of_distribution` among its flags, 4: a record with the row count and the CSV's hash,
# 5: TTA predictions keep the spread of the 8 views, core.evaluate.uncertainty)

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- input quality


def has_quality(predictions: pd.DataFrame) -> bool:
    """Whether these predictions carry the input-quality gate's verdict per patch."""
    return QUALITY_COLUMN in predictions.columns


def flagged_mask(predictions: pd.DataFrame) -> pd.Series:
    """True for each row the input-quality gate flagged (False everywhere without a quality column)."""
    if not has_quality(predictions):
        return pd.Series(False, index=predictions.index)
    return predictions[QUALITY_COLUMN].fillna(OK).astype(str) != OK


def with_quality(predictions: pd.DataFrame, quality: str = ALL_QUALITIES) -> pd.DataFrame:
    """The rows whose quality matches: `all` (every row), `ok` (unflagged) or one flag (rows that
    carry it, alone or with others). Without a quality column nothing counts as flagged: `ok` keeps
    every row and a flag none."""
    if quality == ALL_QUALITIES:
        return predictions
    flagged = flagged_mask(predictions)
    if quality == OK:
        return predictions[~flagged]
    if quality not in QUALITY_FLAGS:
        raise InputError(
            f"quality must be {ALL_QUALITIES!r}, {OK!r} or one of {QUALITY_FLAGS}; got {quality!r}."
        )
    if not has_quality(predictions):
        return predictions.iloc[:0]
    flags = predictions[QUALITY_COLUMN].fillna(OK).astype(str).str.split(FLAG_SEPARATOR)
    return predictions[flags.map(lambda found: quality in found)]


def metrics_by_quality(predictions: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """The headline metrics (AUC, accuracy, sensitivity, specificity) at `threshold` on all labelled
    patches and on the unflagged ones: one row each (index ALL_PATCHES, WITHOUT_FLAGGED), columns
    n, n_flagged_left_out (ints) and HEADLINE_METRICS (NaN where undefined).

    The second row is `metrics_at` on exactly `with_quality(predictions, "ok")`'s labelled rows; it
    is all None (n 0) when every patch is flagged."""
    known = predictions[predictions["label"].notna()]
    rows = []
    for subset in (known, with_quality(known, OK)):
        row = {"n": len(subset), "n_flagged_left_out": len(known) - len(subset)}
        if len(subset):
            metrics = metrics_at(*labelled_arrays(subset), threshold)
            row.update({key: metrics[key] for key in HEADLINE_METRICS})
        else:
            row.update(dict.fromkeys(HEADLINE_METRICS))
        rows.append(row)
    return pd.DataFrame(rows, index=[ALL_PATCHES, WITHOUT_FLAGGED]).astype(
        {key: float for key in HEADLINE_METRICS}
    )


# --------------------------------------------------------------------------- files


def check_columns(frame: pd.DataFrame, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"predictions lack column(s) {missing}; expected {list(PREDICTION_COLUMNS)}, "
            f"found {list(frame.columns)}."
        )


def labelled_arrays(predictions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probs) of the labelled rows, ready for the metric functions."""
    check_columns(predictions, PREDICTION_COLUMNS)
    known = predictions[predictions["label"].notna()]
    return check_labels_probs(known["label"].to_numpy(), known["prob"].to_numpy())


def _stored_columns(frame: pd.DataFrame) -> list[str]:
    optional = [QUALITY_COLUMN] if has_quality(frame) else []
    return list(PREDICTION_COLUMNS) + optional + ([SPREAD_COLUMN] if SPREAD_COLUMN in frame.columns else [])


def _storable(predictions: pd.DataFrame) -> pd.DataFrame:
    check_columns(predictions, ("id", "prob"))
    frame = predictions.copy()
    if "label" not in frame.columns:
        frame["label"] = np.nan
    return frame[_stored_columns(frame)]


def write_predictions(predictions: pd.DataFrame, path: str | Path) -> Path:
    """Store predictions as CSV (id,label,prob[,quality]; label empty when unknown), atomically."""
    return atomic_write_csv(_storable(predictions), path)


def read_predictions(path) -> pd.DataFrame:
    """Read a predictions CSV (a path or a binary file object): id as text, label as float (NaN when
    unknown), prob as float, and `quality` as text when the file has it (older files and runs'
    val_predictions.csv do not)."""
    frame = pd.read_csv(path, dtype={"id": str, QUALITY_COLUMN: str}, keep_default_na=True)
    check_columns(frame, ("id", "prob"))
    if "label" not in frame.columns:
        frame["label"] = np.nan
    frame["label"] = pd.to_numeric(frame["label"], errors="raise").astype(np.float64)
    frame["prob"] = pd.to_numeric(frame["prob"], errors="raise").astype(np.float64)
    if SPREAD_COLUMN in frame.columns:
        frame[SPREAD_COLUMN] = pd.to_numeric(frame[SPREAD_COLUMN], errors="raise").astype(np.float64)
    return frame[_stored_columns(frame)]


def write_submission(predictions: pd.DataFrame, path: str | Path) -> Path:
    """The Kaggle submission format: `id,label` where label is the tumour probability."""
    check_columns(predictions, ("id", "prob"))
    submission = pd.DataFrame({"id": predictions["id"], "label": predictions["prob"]})
    return atomic_write_csv(submission, path)


# --------------------------------------------------------------------------- the disk cache


def _cache_description(model_path: str | Path, dataset, *, tta: bool) -> dict:
    """What decides the predictions: the model file (path, mtime, size), the dataset (path,
    layout, size, content fingerprint, ids) and TTA."""
    from core.model.io import resolve_model_path

    model_file = resolve_model_path(model_path).resolve()
    stat = model_file.stat()
    return {
        "format": CACHE_FORMAT,
        "model": str(model_file),
        "model_mtime_ns": stat.st_mtime_ns,
        "model_size": stat.st_size,
        "dataset": str(Path(dataset.path).resolve()),
        "layout": dataset.layout,
        "n": len(dataset),
        "fingerprint": repr(getattr(dataset, "fingerprint", ())),
        "ids": hashlib.sha256("\n".join(dataset.ids).encode()).hexdigest(),
        "tta": bool(tta),
    }


def prediction_cache_key(model_path: str | Path, dataset, *, tta: bool = False) -> str:
    """The cache file name: a hash of `_cache_description`."""
    text = json.dumps(_cache_description(model_path, dataset, tta=tta), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_prediction_cache_dir() -> Path:
    from core.settings import cache_dir

    return cache_dir() / "predictions"


def prediction_cache_path(
    model_path: str | Path, dataset, *, tta: bool = False, cache_dir: str | Path | None = None
) -> Path:
    """Where the cached predictions of this model on this dataset live (the file may not exist yet)."""
    folder = Path(cache_dir) if cache_dir is not None else default_prediction_cache_dir()
    return folder / f"{prediction_cache_key(model_path, dataset, tta=tta)}.csv"


def read_cached_predictions(path: str | Path, dataset=None) -> pd.DataFrame:
    """A cache entry checked against its record: the predictions, with `attrs["skipped"]` ({id: reason}
    of the patches that could not be read) and `attrs["cached"]` (the CSV's path).

    Raises DamagedCacheError (saying why) when the CSV's hash, row count or ids disagree with the
    record, the record is missing or malformed, or (given `dataset`) the ids are not the dataset's.
    """
    path = Path(path)
    frame, record = read_checked(
        path, lambda data: read_predictions(io.BytesIO(data)), _ids, None if dataset is None else dataset.ids
    )
    frame.attrs["skipped"] = record.skipped
    frame.attrs["cached"] = str(path)
    return frame


def _ids(frame: pd.DataFrame) -> list[str]:
    return frame["id"].tolist()


def cached_predictions(
    model_path: str | Path,
    dataset,
    *,
    tta: bool = False,
    cache_dir: str | Path | None = None,
    model=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    first_batch: int | None = None,
) -> pd.DataFrame:
    """Predictions of the model at `model_path` on `dataset`, computed once and kept on disk.

    `cache_dir` defaults to <workspace>/cache/predictions. Pass an already loaded `model` to
    skip loading it again on a miss (`first_batch`: predict_dataset's). A changed model file (new
    mtime or size) or dataset misses the cache; an entry that disagrees with its record
    (read_cached_predictions) is recomputed, and `attrs["recomputed"]` (and a
    CacheRecomputedWarning) then says why in one sentence. Returns the same frame as
    `predict_dataset(..., quality=True)`, with `attrs["cached"]` = the CSV. Next to each
    `<key>.csv`, `<key>.json` records what the key stands for, the row count, the CSV's SHA-256
    and the patches that could not be read.
    """
    path = prediction_cache_path(model_path, dataset, tta=tta, cache_dir=cache_dir)
    note = None
    if path.is_file():
        try:
            frame = read_cached_predictions(path, dataset)
            if progress:
                progress(len(dataset), len(dataset))
            return frame
        except DamagedCacheError as error:
            note = warn_recomputed(path, str(error))
    if model is None:
        from core.model.io import load_model

        model = load_model(model_path)
    frame = predict_dataset(
        model,
        dataset,
        batch_size=batch_size,
        tta=tta,
        progress=progress,
        quality=True,
        first_batch=first_batch,
    )
    description = _cache_description(model_path, dataset, tta=tta)
    data = _storable(frame).to_csv(index=False).encode()
    write_cached_bytes(path, data, description, rows=len(frame), skipped=frame.attrs["skipped"])
    frame.attrs["cached"] = str(path)
    if note:
        frame.attrs["recomputed"] = note
    return frame


def clear_prediction_cache(cache_dir: str | Path | None = None) -> int:
    """Delete every cached prediction file; returns how many were removed."""
    folder = Path(cache_dir) if cache_dir is not None else default_prediction_cache_dir()
    removed = 0
    for path in folder.glob("*.csv"):
        path.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        removed += 1
    return removed
