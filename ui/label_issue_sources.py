"""Where the Label issues page gets its probabilities: Evaluate's source picker (a run's validation
predictions or the active model's), or a k-fold cross-validation of the active dataset, which runs as a
background job followed by ui.job_panel. Each gives (ranked, lookup, model path, ProbabilityKind).

Session state keys: label_issues_folds, label_issues_epochs, label_issues_arch (the cross-validation's
settings), label_issues_start and label_issues_stop (its buttons).
"""

from __future__ import annotations

import streamlit as st

from core.diagnose import crossval
from core.diagnose.label_issues import (
    model_predictions_kind,
    rank_dataset,
    rank_predictions,
    run_validation_kind,
)
from ui.boundary import error_boundary
from ui.cache import lookup_of
from ui.job_panel import JobView, fraction_done, job_panel
from ui.prediction_source import KIND_KEY, pick_source, show_source_notes
from ui.shared import DATASET_KEY, active_dataset, active_model_path, dataset_label
from ui.text import md_escape


@st.cache_data(show_spinner="Ranking the labelled patches…", max_entries=8)
def _ranked(key: str, _predictions):
    return rank_predictions(_predictions)


def model_source():
    """(ranked, lookup, model path, ProbabilityKind) from Evaluate's source picker, or None."""
    source = pick_source(overlap_words=False)  # the badge below says what training overlap means here
    if source is None:
        return None
    show_source_notes(source)
    if st.session_state.get(KIND_KEY) == "run":
        kind = run_validation_kind(len(source.predictions))
    else:
        from core.model.io import read_model_meta, resolve_model_path

        meta = read_model_meta(resolve_model_path(source.model_path))
        kind = model_predictions_kind(meta.get("config"), st.session_state.get(DATASET_KEY), source.overlap)
    return _ranked(source.key, source.predictions), source.lookup, source.model_path, kind


def folds_source():
    """(ranked, lookup, model path, ProbabilityKind) from a finished k-fold cross-validation, or None
    after offering to start one (and following it while it runs)."""
    dataset = active_dataset()
    model_path = active_model_path()
    if dataset is None or model_path is None:
        st.info("Choose a labelled dataset and a model in the sidebar.")
        return None
    if dataset.labels is None:
        st.info(
            f"{md_escape(dataset_label(st.session_state.get(DATASET_KEY)))} is unlabelled: no label to doubt."
        )
        return None
    from core.model.architectures import ARCHITECTURES
    from core.model.io import read_model_meta, resolve_model_path

    own = read_model_meta(resolve_model_path(model_path)).get("architecture")
    columns = st.columns(3)
    folds = columns[0].number_input("Folds (K)", 2, 10, crossval.DEFAULT_FOLDS, key="label_issues_folds")
    epochs = columns[1].number_input(
        "Epochs a fold", 1, 50, crossval.DEFAULT_EPOCHS, key="label_issues_epochs"
    )
    names = list(ARCHITECTURES)
    architecture = columns[2].selectbox(
        "Fold models", names, index=names.index(own) if own in names else 0, key="label_issues_arch"
    )
    settings = crossval.CrossValSettings(folds=int(folds), architecture=architecture, epochs=int(epochs))
    stored = crossval.stored_crossval(dataset, settings)
    if stored is not None:
        from core.diagnose.label_issues import folds_kind

        return rank_dataset(dataset, stored), lookup_of(dataset), model_path, folds_kind(settings.folds)
    follow_or_offer(model_path, dataset, settings)
    return None


def follow_or_offer(model_path: str, dataset, settings) -> None:
    """The running cross-validation's progress and Stop, else the button (and command) to start one."""
    progress = crossval.progress_of(dataset, settings)
    if progress.running:
        job_panel(crossval_view(dataset, settings))
        return
    if progress.error:
        st.error(f"The cross-validation ended without a result: {md_escape(progress.error)}")
    st.info(
        f"Not computed yet: {settings.folds} {settings.architecture} models, {settings.epochs} epoch(s) each, "
        f"on {len(dataset):,} patches. Each fold model is trained on the other folds and scores the "
        "patches it never saw. Finished folds are kept, so a stopped run continues where it left off."
    )
    st.caption("The same from a terminal:")
    st.code(
        "python -m core " + " ".join(crossval.command_arguments(model_path, dataset, settings)),
        language="bash",
    )
    if st.button("Start the cross-validation", type="primary", key="label_issues_start"):
        with error_boundary("The cross-validation could not be started", also=(OSError,)) as outcome:
            crossval.launch(model_path, dataset, settings)
        if not outcome.failed:
            st.rerun()


def crossval_view(dataset, settings) -> JobView:
    """How the job panel reads, stops and words a cross-validation running in the background."""

    def read() -> dict:
        progress = crossval.progress_of(dataset, settings)
        state = "running" if progress.running else "finished"
        return {"state": state, "done": progress.folds_done, "total": settings.folds, "text": progress.text}

    return JobView(
        key=crossval.crossval_dir(dataset, settings).name,
        title="The cross-validation",
        read=read,
        stop=lambda: crossval.request_stop(crossval.crossval_dir(dataset, settings)),
        stop_key="label_issues_stop",
        progress=lambda status: (fraction_done(status), status["text"]),
        unit="folds",
        stop_toast="Stop requested: the running fold ends at its next batch; finished folds are kept.",
    )
