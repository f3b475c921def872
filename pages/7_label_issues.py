"""Label issues: the labelled patches most likely to carry a wrong label, most suspect first, with
Grad-CAM on demand and a CSV of every ranked patch.

The ranking is confident learning (cleanlab) on the probabilities of a source the user picks, and
the page says which kind they are: a run's validation predictions (out-of-sample, its validation
patches only), the active model on the active dataset (out-of-sample only if the model never
trained on these patches, counted by pixel content), or k-fold cross-validation (out-of-sample for every patch; slow, so it runs as a
background job with progress and a Stop button). All logic lives in core.diagnose.
"""

import streamlit as st

from core.constants import LABEL_NAMES
from core.diagnose import crossval
from core.diagnose.label_issues import (
    model_predictions_kind,
    rank_dataset,
    rank_predictions,
    run_validation_kind,
    suspects_csv,
)
from core.errors import PatchLensError
from ui.cache import lookup_of
from ui.frame import page
from ui.gallery import paged_gallery, patch_in_detail, pick_one
from ui.prediction_source import KIND_KEY, current_threshold, pick_source, show_source_notes
from ui.shared import DATASET_KEY, active_dataset, active_model_path, dataset_label
from ui.similar import similar_in_dataset
from ui.text import md_escape

SOURCE_KEY = "label_issues_source"
SOURCES = {"model": "Stored or model predictions", "folds": "K-fold cross-validation (trains K models)"}
KIND_ICONS = {"out-of-sample": "✅", "in-sample": "⚠️", "unknown": "❔"}


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
        _follow(dataset, settings)
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
        try:
            crossval.launch(model_path, dataset, settings)
        except (PatchLensError, OSError) as error:
            st.error(f"The cross-validation could not be started: {md_escape(error)}")
            return
        st.rerun()


@st.fragment(run_every=2.0)
def _follow(dataset, settings) -> None:
    progress = crossval.progress_of(dataset, settings)
    if not progress.running:
        st.rerun(scope="app")
    st.progress(progress.folds_done / settings.folds, text=progress.text)
    st.caption("This runs in the background: you may reload the page or come back later.")
    if st.button("Stop", key="label_issues_stop"):
        crossval.request_stop(crossval.crossval_dir(dataset, settings))
        st.toast("Stop requested: the running fold ends at its next batch; finished folds are kept.")


# --------------------------------------------------------------------------- the page

with page("Label issues"):
    st.caption(
        "Public patch labels carry mistakes, and a wrong label both teaches a model the wrong thing and "
        "skews every metric measured against it. Confident learning (cleanlab) ranks the labelled patches "
        "by **score = the probability that the given label is wrong** (1 − P(given label)), so the few "
        "worth a second look come first. It can only doubt a label the model did not learn: the "
        "probabilities must come from a model that never trained on these patches (out-of-sample)."
    )
    choice = st.radio(
        "Probabilities", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=SOURCE_KEY
    )
    try:
        found = model_source() if choice == "model" else folds_source()
    except PatchLensError as error:
        st.error(f"Label issues cannot be ranked here: {md_escape(error)}")
        st.stop()
    if found is None:
        st.stop()
    ranked, lookup, model_path, kind = found
    message = f"**{kind.kind}** · {kind.sentence}"
    (st.success if kind.trustworthy else st.warning)(message, icon=KIND_ICONS.get(kind.kind))

    cards = st.columns(3)
    cards[0].metric("Patches ranked", f"{len(ranked):,}")
    cards[1].metric(
        "Flagged by confident learning",
        f"{int(ranked['flagged'].sum()):,}",
        help="cleanlab.filter.find_label_issues: patches counted among the estimated label errors.",
    )
    cards[2].metric("Highest score", f"{ranked['score'].iloc[0]:.3f}")
    st.download_button(
        "Download the ranking (CSV: id, given_label, probability, score)",
        data=suspects_csv(ranked),
        file_name="suspects.csv",
        mime="text/csv",
        key="label_issues_csv",
    )

    # --- the suspects, most suspect first -------------------------------------------------------
    gallery = paged_gallery(
        ranked,
        key="label_issues",
        noun="Suspects",
        order="most suspect first",
        lookup=lookup,
        model_path=model_path,
        threshold=current_threshold(),
        caption=lambda row: (
            f"given {LABEL_NAMES[int(row.given_label)]} · P(tumour)={row.probability:.3f} · score {row.score:.3f}"
            + (" · flagged" if row.flagged else "")
        ),
        unexplained="No model or patches for these probabilities.",
    )

    # --- one suspect in detail ------------------------------------------------------------------
    rows = gallery.rows
    chosen = pick_one(
        gallery,
        "Suspect",
        lambda i: (
            f"score {rows.loc[i, 'score']:.3f} · given {LABEL_NAMES[int(rows.loc[i, 'given_label'])]} · {i}"
        ),
    )
    row = rows.loc[chosen]
    details = {
        "id": chosen,
        "given label": f"{LABEL_NAMES[int(row['given_label'])]} ({int(row['given_label'])})",
        "P(tumour)": f"{row['probability']:.4f}",
        "score (P(label wrong))": f"{row['score']:.4f}",
        "flagged by confident learning": "yes" if row["flagged"] else "no",
        "source": lookup.source_of(chosen),
    }
    patch_in_detail(gallery, chosen, details)
    similar_in_dataset(model_path, active_dataset(), chosen, key="label_issues_similar")
