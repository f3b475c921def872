"""The Predict page's results: one batched forward pass over the uploads (cached per model file and file
content), the counts and the table with its CSV, and where the model looked, a page of patches at a time
(each original beside its overlay, its probability, call and quality flags).

Session state keys: predict_page (the gallery's page, also in the URL), predict_csv (the download).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data.images import draw_centre_box
from core.data.quality import FLAG_BADGES, FLAG_MEANINGS, NOT_MEANINGFUL, withholds
from core.evaluate.heatmaps import describe_strength
from core.evaluate.interpret import call_of
from core.evaluate.uploads import quality_flags, upload_counts, upload_results, with_model_verdict
from core.formatting import NAME_IN_TEXT, page_bounds, quality_words, short_name
from core.model.ood import NO_STATS_NOTE
from ui.boundary import error_boundary
from ui.cache import FileKey, model_key
from ui.gallery import blend, explain_settings, explanation, method_name, scale_legend
from ui.shared import from_url, page_in, to_url
from ui.text import md_escape
from ui.uncertainty import uncertainty_badge

PAGE_SIZE = 8  # patches per gallery page; each shows the original beside its overlay
NOT_READABLE = "not readable (see above)"
CALLS_HELP = "Only patches that pass the input-quality check; flagged patches are counted under Flagged."
FLAGGED_HELP = (
    "Scored patches the input-quality check flags (see the quality column): their probability is not "
    "meaningful and they are not counted as calls. "
    + "; ".join(f"{flag}: {meaning}" for flag, meaning in FLAG_MEANINGS.items())
)


@st.cache_data(show_spinner="Predicting…", max_entries=32)
def probabilities(
    model_file: FileKey, tta: bool, digests: tuple[str, ...], _model, _patches
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One batched forward pass over every good upload, keyed by the model file and the files' content:
    (probabilities, out-of-distribution bools or None when the model carries no statistics, the spread
    of the 8 views or None without TTA)."""
    from core.evaluate.predict import score_stack

    return score_stack(_model, _patches, tta=tta)


def scored(model, batch, tta: bool):
    """(probabilities, batch with the model's out-of-distribution verdict, spread of the 8 views or None)
    of every good upload; the page stops after a message when the model cannot score them."""
    with error_boundary("The model could not score these patches", stop=True):
        probs, unlike_training, spreads = probabilities(
            model_key(model.patchlens_path), tta, tuple(batch.digests), model, batch.patches
        )
    if unlike_training is None:
        st.caption(NO_STATS_NOTE)
    return probs, with_model_verdict(batch, unlike_training), spreads


def shown_results(results):
    """The results table as shown: quality in words; an unreadable file's reason is in its error above
    (a 'problem' column was cut to a few words), so its row just says 'not readable'. The CSV keeps all."""
    unreadable = results["problem"] != ""
    quality = results["quality"].map(quality_words).where(~unreadable, NOT_READABLE)
    return results.assign(quality=quality).drop(columns="problem")


def results_table(batch, probs, threshold: float) -> None:
    """The counts (scored, called tumour/normal, flagged, not readable), the table and its CSV."""
    results = upload_results(batch, probs, threshold)
    counts = upload_counts(results)
    cards = st.columns(5)
    cards[0].metric("Scored", f"{counts['scored']:,}")
    cards[1].metric("Called tumour", f"{counts['tumour']:,}", help=CALLS_HELP)
    cards[2].metric("Called normal", f"{counts['normal']:,}", help=CALLS_HELP)
    cards[3].metric("Flagged", f"{counts['flagged']:,}", help=FLAGGED_HELP)
    cards[4].metric("Not readable", f"{counts['unreadable']:,}")
    st.dataframe(
        shown_results(results),
        hide_index=True,
        width="stretch",
        column_config={"probability": st.column_config.ProgressColumn("P(tumour)", format="%.4f", min_value=0.0,
                                                                      max_value=1.0)},
    )  # fmt: skip
    st.download_button(
        "Download results (CSV)",
        data=results.to_csv(index=False).encode(),
        file_name="patchlens_predictions.csv",
        mime="text/csv",
        key="predict_csv",
    )


def shown_page(n_patches: int) -> tuple[int, int]:
    """(start, stop) of the gallery's page, with a page number input when there is more than one."""
    start, stop, n_pages = page_bounds(n_patches, 1, PAGE_SIZE)
    if n_pages > 1:
        from_url("predict_page", "predict_page", page_in(n_pages))
        page = st.number_input(
            f"Page (of {n_pages}, {PAGE_SIZE} patches each)", 1, n_pages, 1, key="predict_page"
        )
        to_url("predict_page", None if page == 1 else str(int(page)))
        start, stop, _ = page_bounds(n_patches, int(page), PAGE_SIZE)
    return start, stop


def where_the_model_looked(model_path: str, batch, probs, threshold: float, spreads=None) -> None:
    """A page of uploads, each original beside its heatmap, with its probability, call and flags (and
    the 'uncertain' badge when `spreads`, the 8 views' spread with TTA, is given)."""
    st.subheader("Where the model looked")
    settings = explain_settings("predict")
    start, stop = shown_page(len(batch.names))
    explained_page = explanation(
        model_path, batch.patches[start:stop], batch.digests[start:stop], settings, threshold
    )
    if explained_page is None:
        st.stop()
    scale_legend(explained_page, settings)
    references = explained_page.references
    shown_method = method_name(settings["method"])
    for k in range(start, stop):
        original, explained, text = st.columns([1, 1, 1.2])
        patch = batch.patches[k]
        original.image(
            draw_centre_box(patch) if settings["box"] else patch, caption="original", width="stretch"
        )
        strength = describe_strength(
            explained_page.strengths[k - start], None if references is None else references[k - start]
        )
        explained.image(
            blend(patch, explained_page.heatmaps[k - start], settings),
            caption=f"{shown_method}, {strength}",
            width="stretch",
        )
        patch_verdict(text, batch.names[k], float(probs[k]), batch.quality[k], threshold)
        uncertainty_badge(text, spreads, k)


def patch_verdict(column, name: str, prob: float, quality: str, threshold: float) -> None:
    """One upload's name, probability and call (none when flagged), its flag badges and a note."""
    flags, withheld = quality_flags(quality), withholds(quality)
    call = f":gray[{NOT_MEANINGFUL}]" if withheld else f"**{call_of(prob, threshold)}**"
    column.markdown(
        f"**{md_escape(short_name(name, NAME_IN_TEXT))}**  \nP(tumour) **{prob:.4f}**  \ncall at {threshold:.3f}: {call}"
    )
    for flag in flags:
        column.badge(FLAG_BADGES[flag], icon="⚠️", color="orange", help=FLAG_MEANINGS[flag])
    if withheld:
        column.caption("Not counted as a call: the input-quality check flagged this patch.")
    else:
        column.progress(prob)
        if flags:
            column.caption("Counted as a call, but unusual for this model: check it.")
