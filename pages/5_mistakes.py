"""Mistakes: false positives and false negatives at the shared threshold, most confident first,
with Grad-CAM on demand and a CSV of the filtered list.

The list is derived from the same cached predictions as Evaluate (core.evaluate.metrics.mistakes); only
the patches of the page shown are read, and heatmaps are computed only when asked for, for that
page only.
"""

import streamlit as st

from core.constants import LABEL_NAMES
from core.data.quality import FLAG_MEANINGS, OK, QUALITY_FLAGS
from core.evaluate.interpret import MISTAKE_KINDS, Interpretation, mistakes_csv
from core.evaluate.predictions import ALL_QUALITIES, has_quality
from core.formatting import quality_words, short_id
from ui.boundary import error_boundary
from ui.frame import page
from ui.gallery import paged_gallery, patch_in_detail, pick_one
from ui.prediction_source import pick_source, show_source_notes
from ui.shared import from_url, one_of, to_url
from ui.threshold import threshold_control
from ui.uncertainty import certainty_filter

KIND_FILTERS = {"both": None, "false positives": "false positive", "false negatives": "false negative"}
SHORT = {"false positive": "FP", "false negative": "FN"}
# The filters' widget keys, also the URL's parameters: a reload or a copied link keeps them.
KIND_KEY, RANGE_KEY, QUALITY_KEY = "mistakes_kind", "mistakes_range", "mistakes_quality"
FULL_RANGE = (0.0, 1.0)


def probability_range(text: str) -> tuple[float, float] | None:
    """'0.20-0.80' from the URL as the slider's (low, high); None when it is not a range in [0, 1]."""
    low, high = (round(float(part), 2) for part in text.split("-"))
    return (low, high) if 0.0 <= low <= high <= 1.0 else None


def mistake_filters(with_flags: bool) -> dict:
    """The filters (kind, probability range, input quality when the predictions carry flags), kept in
    the URL; returns them as keyword arguments of Interpretation.mistakes."""
    filters = st.columns([2, 3, 2] if with_flags else [2, 3])
    from_url(KIND_KEY, KIND_KEY, one_of(KIND_FILTERS))
    shown_kind = filters[0].radio("Show", list(KIND_FILTERS), horizontal=True, key=KIND_KEY)
    to_url(KIND_KEY, None if shown_kind == "both" else shown_kind)
    from_url(RANGE_KEY, RANGE_KEY, probability_range)
    low, high = filters[1].slider("P(tumour) between", 0.0, 1.0, FULL_RANGE, 0.01, key=RANGE_KEY)
    to_url(RANGE_KEY, None if (low, high) == FULL_RANGE else f"{low:.2f}-{high:.2f}")
    quality = ALL_QUALITIES
    if with_flags:
        from_url(QUALITY_KEY, QUALITY_KEY, one_of([ALL_QUALITIES, OK, *QUALITY_FLAGS]))
        quality = filters[2].selectbox(
            "Input quality",
            [ALL_QUALITIES, OK, *QUALITY_FLAGS],
            format_func=lambda q: {ALL_QUALITIES: "all patches", OK: "ok (not flagged)"}.get(
                q, f"flagged {quality_words(q)}"
            ),
            key=QUALITY_KEY,
            help="Flags of the input-quality gate: "
            + "; ".join(f"{flag}: {meaning}" for flag, meaning in FLAG_MEANINGS.items()),
        )
        to_url(QUALITY_KEY, None if quality == ALL_QUALITIES else quality)
    else:
        st.caption("No input-quality flags for these predictions, so they cannot be filtered by quality.")
    return {"kind": KIND_FILTERS[shown_kind], "min_prob": low, "max_prob": high, "quality": quality}


def found_mistakes(predictions, threshold: float, filters: dict):
    """(every mistake, the filtered ones) at `threshold`; the page stops after a message when these
    predictions cannot be searched."""
    with error_boundary("These predictions cannot be searched for mistakes", stop=True):
        interpretation = Interpretation(predictions)
        wrong = interpretation.mistakes(threshold, **filters)
    wrong = certainty_filter(wrong, predictions)  # issue 23: certain / uncertain
    return interpretation.mistakes(threshold), wrong


def mistake_counts(every, wrong, threshold: float, source) -> None:
    """The counts, and the filtered list as a CSV; the page stops when nothing matches."""
    counts = every["kind"].value_counts()
    cards = st.columns(4)
    cards[0].metric(
        "False positives", f"{counts.get(MISTAKE_KINDS[0], 0):,}", help="Normal patches called tumour."
    )
    cards[1].metric(
        "False negatives", f"{counts.get(MISTAKE_KINDS[1], 0):,}", help="Tumour patches called normal."
    )
    cards[2].metric("Shown after filters", f"{len(wrong):,}")
    cards[3].metric("Threshold", f"{threshold:.3f}")
    sources = [source.lookup.source_of(i) if source.lookup else "" for i in wrong["id"]]
    st.download_button(
        "Download this list (CSV)",
        data=mistakes_csv(wrong, sources),
        file_name=f"mistakes_at_{threshold:.3f}.csv",
        mime="text/csv",
        key="mistakes_csv",
        disabled=wrong.empty,
    )
    if wrong.empty:
        st.success("No mistakes match these filters at this threshold.")
        st.stop()


def mistake_gallery(wrong, source, threshold: float, with_flags: bool):
    """The mistakes, most confident first, as a paged gallery (Grad-CAM on demand)."""
    return paged_gallery(
        wrong,
        key="mistakes",
        noun="Mistakes",
        order="most confident first (confidence = |P(tumour) − true label|)",
        lookup=source.lookup,
        model_path=source.model_path,
        threshold=threshold,
        caption=lambda row: (
            f"{SHORT[row.kind]} · p={row.prob:.3f} · {LABEL_NAMES[int(row.label)]} · {short_id(row.Index)}"
            + (f" · {quality_words(row.quality)}" if with_flags and row.quality != OK else "")
        ),
        unexplained="No model file for these predictions.",
    )


def mistake_in_detail(gallery, source, threshold: float, with_flags: bool) -> None:
    """One mistake picked from the gallery, in detail."""
    rows = gallery.rows
    chosen = pick_one(
        gallery, "Mistake", lambda i: f"{SHORT[rows.loc[i, 'kind']]} · p={rows.loc[i, 'prob']:.3f} · {i}"
    )
    row = rows.loc[chosen]
    details = {
        "id": chosen,
        "kind": row["kind"],
        "true label": f"{LABEL_NAMES[int(row['label'])]} ({int(row['label'])})",
        "P(tumour)": f"{row['prob']:.4f}",
        "confidence": f"{row['confidence']:.4f}",
        **({"input quality": quality_words(row["quality"])} if with_flags else {}),
        "threshold": f"{threshold:.3f}",
        "source": source.lookup.source_of(chosen),
        "predictions": source.title,
    }
    patch_in_detail(gallery, chosen, details)


with page("Mistakes"):
    source = pick_source()
    if source is None:
        st.stop()
    show_source_notes(source)
    threshold = threshold_control()
    with_flags = has_quality(source.predictions)
    every, wrong = found_mistakes(source.predictions, threshold, mistake_filters(with_flags))
    mistake_counts(every, wrong, threshold, source)
    gallery = mistake_gallery(wrong, source, threshold, with_flags)
    mistake_in_detail(gallery, source, threshold, with_flags)
