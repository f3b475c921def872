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
from core.diagnose.label_issues import suspects_csv
from ui.boundary import error_boundary
from ui.frame import page
from ui.gallery import paged_gallery, patch_in_detail, pick_one
from ui.label_issue_sources import folds_source, model_source
from ui.shared import active_dataset
from ui.similar import similar_in_dataset
from ui.threshold import current_threshold

SOURCE_KEY = "label_issues_source"
SOURCES = {"model": "Stored or model predictions", "folds": "K-fold cross-validation (trains K models)"}
KIND_ICONS = {"out-of-sample": "✅", "in-sample": "⚠️", "unknown": "❔"}
EXPLAINED = (
    "Public patch labels carry mistakes, and a wrong label both teaches a model the wrong thing and "
    "skews every metric measured against it. Confident learning (cleanlab) ranks the labelled patches "
    "by **score = the probability that the given label is wrong** (1 − P(given label)), so the few "
    "worth a second look come first. It can only doubt a label the model did not learn: the "
    "probabilities must come from a model that never trained on these patches (out-of-sample)."
)


def ranked_source():
    """The probabilities the user picks, ranked: (ranked, lookup, model path, kind); the page stops
    while there are none."""
    choice = st.radio(
        "Probabilities", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=SOURCE_KEY
    )
    with error_boundary("Label issues cannot be ranked here", stop=True):
        found = model_source() if choice == "model" else folds_source()
    if found is None:
        st.stop()
    return found


def ranking_summary(ranked, kind) -> None:
    """What kind of probabilities these are, the counts, and the ranking as a CSV."""
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


def suspects(ranked, lookup, model_path: str | None):
    """The suspects, most suspect first, as a paged gallery (Grad-CAM on demand)."""
    return paged_gallery(
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


def suspect_in_detail(gallery, lookup) -> str:
    """One suspect picked from the gallery, in detail; returns its id."""
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
    return chosen


with page("Label issues"):
    st.caption(EXPLAINED)
    ranked, lookup, model_path, kind = ranked_source()
    ranking_summary(ranked, kind)
    gallery = suspects(ranked, lookup, model_path)
    chosen = suspect_in_detail(gallery, lookup)
    similar_in_dataset(model_path, active_dataset(), chosen, key="label_issues_similar")
