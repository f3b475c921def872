"""Where Evaluate and Mistakes get their predictions (the threshold they share lives in ui.threshold).

A source is the active model's predictions on the active labelled dataset (the default: what the
sidebar shows) or a run's stored validation predictions (val_predictions.csv, no model call). The
active model's are computed once by a background job (core.evaluate.jobs, followed by
ui.prediction_jobs), which the page finds again after a reload, and kept on disk by
core.evaluate.predict.cached_predictions. Either way the page receives a DataFrame id,label,prob that is
cached, so moving the threshold never touches a model; the active model's also carries `quality`
(the input-quality gate's flags per patch), a run's stored predictions do not.

Session state keys (one home for each):
  prediction_source_kind   "run" or "active"
  prediction_source_run    the chosen run's directory
  prediction_source_tta    test-time augmentation for the active-model source
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.cache_records import DamagedCacheError
from core.data.hashes import Overlap
from core.errors import PatchLensError
from core.evaluate.sources import (
    PatchLookup,
    load_run_predictions,
    overlap_caption,
    overlap_warning,
    run_predictions_path,
    training_overlap,
    validation_info,
)
from core.files import modified_ns
from core.model.ood import NO_STATS_NOTE
from core.train.runs import list_runs
from ui.boundary import error_boundary
from ui.cache import FileKey, dataset_key, file_key, lookup_of
from ui.prediction_jobs import prediction_jobs
from ui.shared import (
    DATASET_KEY,
    NO_MODEL,
    URL_TTA,
    active_dataset,
    active_model_path,
    dataset_label,
    keep_flag,
    model_label,
    restore_flag,
)
from ui.text import md_escape

KIND_KEY = "prediction_source_kind"
RUN_KEY = "prediction_source_run"
TTA_KEY = "prediction_source_tta"
KINDS = {"active": "The active model on the active dataset", "run": "A run's validation predictions"}


@dataclass
class PredictionSource:
    """Predictions ready to view, and what the page needs to say about them."""

    key: str  # identifies these exact predictions (for st.cache_data)
    title: str
    predictions: pd.DataFrame
    note: str | None  # where the validation patches come from
    warning: str | None  # a reason to distrust the numbers (random split, training data)
    lookup: PatchLookup | None  # reads the patches by id; None when no dataset can be opened
    model_path: str | None  # the model that made the predictions (for Grad-CAM), when known
    skipped: int = 0  # patches the model could not read
    overlap: Overlap | None = None  # how many of the patches the model trained on, when it keeps a record
    overlap_note: str | None = None  # the overlap in words ('k of n patches were in …'), when asked


# --------------------------------------------------------------------------- cached loaders


@st.cache_data(show_spinner=False, max_entries=16)
def _run_predictions(csv: FileKey) -> pd.DataFrame:
    return load_run_predictions(Path(csv.path).parent)


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_file_predictions(csv: FileKey, dataset: tuple[str, int, str], _dataset) -> pd.DataFrame:
    from core.evaluate.predictions import read_cached_predictions

    return read_cached_predictions(csv.path, _dataset)  # DamagedCacheError when it disagrees with its record


@st.cache_resource(show_spinner="Indexing the validation patches…", max_entries=4)
def _lookup(files: tuple[FileKey, ...]) -> PatchLookup:
    return PatchLookup([file.path for file in files])


# --------------------------------------------------------------------------- the picker


def pick_source(*, overlap_words: bool = True) -> PredictionSource | None:
    """Draw the source picker; returns the chosen predictions, or None after saying why not.

    Without `overlap_words` the page says itself what training overlap means for it (Label issues):
    the source still carries the overlap, but not Evaluate's warning about it."""
    runs = [r for r in list_runs() if run_predictions_path(r.path)]
    st.session_state.setdefault(KIND_KEY, "active")  # what the sidebar shows; a run's is a choice
    kind = st.radio("Predictions", list(KINDS), format_func=KINDS.get, horizontal=True, key=KIND_KEY)
    if kind == "run":
        return _run_source(runs)
    return _active_source(overlap_words)


def _run_source(runs) -> PredictionSource | None:
    if not runs:
        st.info(
            "No run has stored validation predictions yet: train one on the Train page, or use the active model."
        )
        return None
    paths = [str(r.path) for r in runs]
    if st.session_state.get(RUN_KEY) not in paths:
        st.session_state[RUN_KEY] = paths[0]
    by_path = {str(r.path): r for r in runs}

    def describe(path: str) -> str:
        run = by_path[path]
        auc = f" · val AUC {run.best_val_auc:.4f}" if run.best_val_auc is not None else ""
        return f"{run.name} · {run.architecture} · {run.state}{auc}"

    chosen = st.selectbox("Run", paths, format_func=describe, key=RUN_KEY)
    run = by_path[chosen]
    csv_path = run_predictions_path(run.path)
    with error_boundary() as outcome:
        predictions = _run_predictions(file_key(csv_path))
    if outcome.failed:
        return None
    info = validation_info(run.config)
    lookup = _lookup(tuple(map(file_key, info.patch_paths)))
    model = run.model_path
    return PredictionSource(
        key=f"{csv_path}:{modified_ns(csv_path)}",
        title=f"run {run.name} — {len(predictions):,} validation predictions",
        predictions=predictions,
        note=info.note if info.separate else None,
        warning=None if info.separate else info.note,
        lookup=lookup if len(lookup) else None,
        model_path=str(model) if model else None,
    )


def _active_source(overlap_words: bool = True) -> PredictionSource | None:
    model_path = active_model_path()
    if model_path is None:
        st.warning(NO_MODEL)
        return None
    dataset = active_dataset()
    if dataset is None:
        return None
    dataset_path = st.session_state.get(DATASET_KEY)
    if dataset.labels is None:
        st.info(
            f"{md_escape(dataset_label(dataset_path))} is unlabelled: it can be scored on the Predict page, not evaluated."
        )
        return None
    from core.evaluate.predictions import prediction_cache_path
    from core.model.io import read_model_meta, resolve_model_path

    restore_flag(TTA_KEY, URL_TTA)
    tta = st.checkbox("Test-time augmentation (average of 8 flips/rotations, 8× slower)", key=TTA_KEY)
    keep_flag(URL_TTA, tta)
    with error_boundary() as outcome:
        csv_path = prediction_cache_path(model_path, dataset, tta=tta)
        meta = read_model_meta(resolve_model_path(model_path))
        found = overlap_with_training(model_path, dataset)
    if outcome.failed:
        return None
    title = f"{model_label(model_path)} on {dataset_label(dataset_path)}" + (" (TTA)" if tta else "")
    overlap = overlap_warning(found, (meta or {}).get("config"), dataset_path) if overlap_words else None
    if not csv_path.is_file():
        if overlap:
            st.warning(md_escape(overlap), icon="⚠️")
        prediction_jobs({model_path: title}, dataset, tta=tta)
        return None
    try:
        predictions = _cached_file_predictions(file_key(csv_path), dataset_key(dataset), dataset)
    except DamagedCacheError as error:
        _recompute_damaged(csv_path, str(error), {model_path: title}, dataset, tta=tta)
        return None
    except (OSError, ValueError) as error:
        st.error(
            f"The cached predictions {csv_path.name} could not be read ({md_escape(error)}); delete it and run again."
        )
        return None
    skipped = len(predictions.attrs.get("skipped", {}))
    return PredictionSource(
        key=f"{csv_path}:{modified_ns(csv_path)}",
        title=f"{title} — {len(predictions):,} predictions",
        predictions=predictions,
        note=None,
        warning=overlap,
        lookup=lookup_of(dataset),
        model_path=model_path,
        skipped=skipped,
        overlap=found,
        overlap_note=overlap_caption(found) if overlap_words else None,
    )


def _recompute_damaged(csv_path: Path, reason: str, models: dict[str, str], dataset, *, tta: bool) -> None:
    """A cache that disagrees with its record is discarded and its job started again, said once."""
    from core.data.cache_records import damaged_message, discard_cache
    from core.evaluate.jobs import launch

    discard_cache(csv_path)
    st.warning(md_escape(damaged_message(csv_path, reason)), icon="⚠️")
    with error_boundary("The job could not be started", also=(OSError,)) as outcome:
        launch(next(iter(models)), dataset, tta=tta)
    if not outcome.failed:
        prediction_jobs(models, dataset, tta=tta)


PAGE_HASH_LIMIT = 4000  # patches hashed on the page (~6 s of decoding); more wait for the prediction job


def overlap_with_training(model_path: str, dataset):
    """How many of the dataset's patches the model trained on, by pixel content (None: no record)."""
    from core.data.hashes import PENDING, cached_dataset_hashes, training_hashes_path
    from core.model.io import resolve_model_path

    record = training_hashes_path(resolve_model_path(model_path))
    if record is None:
        return None
    if len(dataset) > PAGE_HASH_LIMIT and cached_dataset_hashes(dataset) is None:
        return PENDING  # hashing it here would hold the page; the prediction job hashes what it scores
    return _overlap(str(model_path), file_key(record), dataset_key(dataset), dataset)


@st.cache_data(show_spinner="Matching the patches against the model's training patches…", max_entries=16)
def _overlap(model_path: str, record: FileKey, dataset: tuple[str, int, str], _dataset):
    return training_overlap(model_path, _dataset)


def show_source_notes(source: PredictionSource) -> None:
    """The caption, the split warning (visible) and the separate-dataset note of a source."""
    st.caption(md_escape(source.title))
    if source.warning:
        st.warning(md_escape(source.warning), icon="⚠️")
    elif source.overlap_note:
        st.caption(md_escape(source.overlap_note))
    if source.note:
        st.info(md_escape(source.note), icon="ℹ️")
    if source.skipped:
        st.caption(f"{source.skipped:,} patches could not be read and are left out.")
    if source.lookup is not None and source.lookup.problems:
        st.caption(
            "Some datasets of this source could not be opened: "
            + md_escape("; ".join(source.lookup.problems[:2]))
        )
    if source.lookup is None:
        st.caption("The patches behind these predictions cannot be opened here, so only tables are shown.")
    if _lacks_ood_stats(source):
        st.caption(NO_STATS_NOTE)


def _lacks_ood_stats(source: PredictionSource) -> bool:
    """Whether these predictions carry quality flags from a model without out-of-distribution statistics."""
    from core.evaluate.predictions import has_quality
    from core.model.ood import has_ood_stats

    if source.model_path is None or not has_quality(source.predictions):
        return False
    try:
        return not has_ood_stats(source.model_path)
    except PatchLensError:
        return False
