"""Where Evaluate and Mistakes get their predictions, and the one threshold every page shares.

A source is the active model's predictions on the active labelled dataset (the default: what the
sidebar shows) or a run's stored validation predictions (val_predictions.csv, no model call). The
active model's are computed once by a background job (core.evaluate.jobs, followed by
ui.prediction_jobs), which the page finds again after a reload, and kept on disk by
core.evaluate.predict.cached_predictions. Either way the page receives a DataFrame id,label,prob that is
cached, so moving the threshold never touches a model; the active model's also carries `quality`
(the input-quality gate's flags per patch), a run's stored predictions do not.

Session state keys (one home for each):
  threshold                the decision threshold shared by Evaluate, Predict and Mistakes
  threshold_slider         the slider widget that edits it (written from `threshold` every run)
  prediction_source_kind   "run" or "active"
  prediction_source_run    the chosen run's directory
  prediction_source_tta    test-time augmentation for the active-model source
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from core.constants import DEFAULT_THRESHOLD
from core.data.cache_records import DamagedCacheError
from core.data.hashes import Overlap
from core.errors import PatchLensError
from core.evaluate.sources import (
    PatchLookup,
    dataset_lookup,
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
from ui.prediction_jobs import prediction_jobs
from ui.shared import (
    DATASET_KEY,
    NO_MODEL,
    THRESHOLD_KEY,
    URL_THRESHOLD,
    URL_TTA,
    active_dataset,
    active_model_path,
    dataset_label,
    keep_flag,
    model_label,
    restore_flag,
)
from ui.text import md_escape

SLIDER_KEY = "threshold_slider"
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


# --------------------------------------------------------------------------- the threshold


def _threshold_from_url() -> float | None:
    """The threshold a shared URL or a reload carries (?threshold=0.42), when it is a valid one."""
    text = st.query_params.get(URL_THRESHOLD)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0.0 <= value <= 1.0 else None


def current_threshold() -> float:
    """The threshold in force; a new session starts from the URL's when it carries a valid one, and
    says so when the URL's is not a number between 0 and 1."""
    if THRESHOLD_KEY not in st.session_state:
        from_url = _threshold_from_url()
        st.session_state[THRESHOLD_KEY] = DEFAULT_THRESHOLD if from_url is None else from_url
        if from_url is None and st.query_params.get(URL_THRESHOLD) is not None:
            st.warning(
                f"The threshold in the link ({md_escape(st.query_params[URL_THRESHOLD])}) is not a number "
                f"between 0 and 1 — using {DEFAULT_THRESHOLD}."
            )
    return float(st.session_state[THRESHOLD_KEY])


def _slider_moved() -> None:
    st.session_state[THRESHOLD_KEY] = float(st.session_state[SLIDER_KEY])


def _set_threshold(value: float) -> None:
    st.session_state[THRESHOLD_KEY] = float(value)


def threshold_control(presets: dict[str, float | None] | None = None) -> float:
    """The shared threshold slider (+ preset buttons); returns the threshold in force.

    The slider never holds a value of its own: THRESHOLD_KEY is the one truth, and it is written
    into the slider's key on EVERY run, before the slider is drawn. Streamlit then sends the value
    to the browser each time (set_value). Writing it only when the two differ was the bug of
    issue 9: after a run in which the slider was not drawn (a dataset not computed yet), the stale
    key still equalled the threshold, nothing was written, and the browser mounted the slider at
    its minimum, 0.000, and sent that back on the next click. A slider move reaches THRESHOLD_KEY
    through on_change before the script runs, so the write below never undoes it.
    """
    value = current_threshold()
    st.session_state[SLIDER_KEY] = value
    columns = st.columns([1, 1], vertical_alignment="bottom") if presets else [st.container()]
    columns[0].slider(
        "Threshold — a patch is called tumour when P(tumour) ≥ threshold",
        0.0,
        1.0,
        step=0.001,
        format="%.3f",
        key=SLIDER_KEY,
        on_change=_slider_moved,
        help="Shared by Evaluate, Predict and Mistakes.",
    )
    if presets:
        names = {"0.5": "0.5", "youden": "Youden's J"}
        row = columns[1].container(horizontal=True, wrap=True, gap="small")  # each label in full
        for name, preset in presets.items():
            label = names.get(name, name.replace("sensitivity≥", "sens ≥ "))
            shown = f"{label} ({preset:.3f})" if preset is not None and name != "0.5" else label
            row.button(
                shown,
                key=f"preset-{name}",
                on_click=_set_threshold,
                args=(preset,),
                disabled=preset is None,
                help={
                    "youden": "Maximises sensitivity + specificity − 1 on these predictions.",
                    "0.5": "The conventional threshold.",
                }.get(
                    name,
                    "The highest threshold whose sensitivity still reaches the target: the fewest "
                    "false alarms at that sensitivity.",
                ),
                width="content",
            )
    return current_threshold()


# --------------------------------------------------------------------------- cached loaders


@st.cache_data(show_spinner=False, max_entries=16)
def _run_predictions(path: str, mtime: float) -> pd.DataFrame:
    return load_run_predictions(Path(path).parent)


@st.cache_data(show_spinner=False, max_entries=16)
def _cached_file_predictions(path: str, mtime: float, fingerprint: str, _dataset) -> pd.DataFrame:
    from core.evaluate.predictions import read_cached_predictions

    return read_cached_predictions(path, _dataset)  # DamagedCacheError when it disagrees with its record


@st.cache_resource(show_spinner="Indexing the validation patches…", max_entries=4)
def _lookup(paths: tuple[str, ...], mtimes: tuple[float, ...]) -> PatchLookup:
    return PatchLookup(list(paths))


@st.cache_resource(show_spinner=False, max_entries=4)
def _active_lookup(path: str, n: int, fingerprint: str, _dataset) -> PatchLookup:
    return dataset_lookup(_dataset)


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
    try:
        predictions = _run_predictions(str(csv_path), modified_ns(csv_path))
    except PatchLensError as error:
        st.error(md_escape(error))
        return None
    info = validation_info(run.config)
    lookup = _lookup(info.patch_paths, tuple(modified_ns(p) for p in info.patch_paths))
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
    try:
        csv_path = prediction_cache_path(model_path, dataset, tta=tta)
        meta = read_model_meta(resolve_model_path(model_path))
    except PatchLensError as error:
        st.error(md_escape(error))
        return None
    title = f"{model_label(model_path)} on {dataset_label(dataset_path)}" + (" (TTA)" if tta else "")
    try:
        found = overlap_with_training(model_path, dataset)
    except PatchLensError as error:
        st.error(md_escape(error))
        return None
    overlap = overlap_warning(found, (meta or {}).get("config"), dataset_path) if overlap_words else None
    if not csv_path.is_file():
        if overlap:
            st.warning(md_escape(overlap), icon="⚠️")
        prediction_jobs({model_path: title}, dataset, tta=tta)
        return None
    fingerprint = repr(getattr(dataset, "fingerprint", ()))
    try:
        predictions = _cached_file_predictions(str(csv_path), modified_ns(csv_path), fingerprint, dataset)
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
        lookup=_active_lookup(str(dataset_path), len(dataset), fingerprint, dataset),
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
    try:
        launch(next(iter(models)), dataset, tta=tta)
    except (PatchLensError, OSError) as error:
        st.error(f"The job could not be started: {md_escape(error)}")
        return
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
    fingerprint = repr(getattr(dataset, "fingerprint", ()))
    return _overlap(str(model_path), str(record), modified_ns(record), fingerprint, len(dataset), dataset)


@st.cache_data(show_spinner="Matching the patches against the model's training patches…", max_entries=16)
def _overlap(model_path: str, record: str, mtime: int, fingerprint: str, n: int, _dataset):
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
