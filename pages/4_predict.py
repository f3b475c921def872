"""Predict: drop one or many patches → P(tumour), the call at the shared threshold, and where the
model looked (Grad-CAM and friends), with a CSV of the results.

Uploads are decoded in memory (no temporary files). A file that cannot be decoded gets its own
error and the others still get predictions. All good patches go through the model in one batch;
probabilities and heatmaps are cached per (model, file content), so moving a slider only redraws.
Each patch also goes through the input-quality gate (core.data.quality, and the model's own
out-of-distribution check, core.model.ood, in the same forward pass): a flagged patch keeps its
probability but gets a badge per flag and no call, and is counted as flagged, not as a call.
"""

import os

import numpy as np
import streamlit as st

from core.data.images import draw_centre_box
from core.data.quality import FLAG_BADGES, FLAG_MEANINGS, NOT_MEANINGFUL, withholds
from core.errors import PatchLensError
from core.evaluate.heatmaps import describe_strength
from core.evaluate.interpret import call_of
from core.evaluate.kept_uploads import keep_batch, kept_batch
from core.evaluate.uploads import (
    decode_uploads,
    quality_flags,
    upload_counts,
    upload_results,
    with_model_verdict,
)
from core.formatting import NAME_IN_TEXT, page_bounds, quality_words, short_name
from core.model.ood import NO_STATS_NOTE
from ui.frame import page
from ui.gallery import blend, explain_settings, explanation, method_name, scale_legend
from ui.prediction_source import threshold_control
from ui.shared import (
    active_dataset,
    from_url,
    load_active_model,
    model_label,
    page_in,
    required_model_path,
    to_url,
)
from ui.similar import similar_to_uploads
from ui.text import md_escape
from ui.uncertainty import uncertainty_badge, upload_spreads

PAGE_SIZE = 8  # patches per gallery page; each shows the original beside its overlay
NOT_READABLE = "not readable (see above)"
URL_BATCH = "predict_batch"  # the URL's name of the batch kept in the workspace (core.evaluate.kept_uploads)
HAD_UPLOADS_KEY = "predict_had_uploads"  # the uploader held files in this session's last run
KEPT_HELP = (
    "Your files are kept in this server's workspace (the last few batches) and named in the page's "
    "link, so a reload or a copied link shows these results again."
)
KEPT_NOTE = (
    "Kept in the workspace and named in the link: a reload or a copied link shows these results again."
)
UPLOAD_TYPES = ["tif", "tiff", "png", "jpg", "jpeg"]
CALLS_HELP = "Only patches that pass the input-quality check; flagged patches are counted under Flagged."
FLAGGED_HELP = (
    "Scored patches the input-quality check flags (see the quality column): their probability is not "
    "meaningful and they are not counted as calls. "
    + "; ".join(f"{flag}: {meaning}" for flag, meaning in FLAG_MEANINGS.items())
)


@st.cache_data(show_spinner="Predicting…", max_entries=32)
def probabilities(
    model_file: str, mtime: float, tta: bool, digests: tuple[str, ...], _model, _patches
) -> tuple[np.ndarray, np.ndarray | None]:
    """One batched forward pass over every good upload, keyed by the model file and the files' content:
    (probabilities, out-of-distribution bools or None when the model carries no statistics)."""
    from core.model.ood import score_patches

    scored = score_patches(_model, _patches, tta=tta)
    return scored.probs, scored.out_of_distribution


def shown_results(results):
    """The results table as shown: quality in words; an unreadable file's reason is in its error above
    (a 'problem' column was cut to a few words), so its row just says 'not readable'. The CSV keeps all."""
    unreadable = results["problem"] != ""
    quality = results["quality"].map(quality_words).where(~unreadable, NOT_READABLE)
    return results.assign(quality=quality).drop(columns="problem")


def batch_files(uploads) -> list[tuple[str, bytes]]:
    """The (name, bytes) to score: the uploader's files, kept in the workspace and named in the URL;
    without any, the batch the URL names (a reload, a copied link). Emptying the uploader forgets it."""
    if uploads:
        files = [(upload.name, upload.getvalue()) for upload in uploads]
        try:
            to_url(URL_BATCH, keep_batch(files))
            st.caption(KEPT_NOTE)
        except PatchLensError as error:
            to_url(URL_BATCH, None)
            st.warning(f"These results will be lost on a reload: {error}")
        st.session_state[HAD_UPLOADS_KEY] = True
        return files
    if st.session_state.pop(HAD_UPLOADS_KEY, False):  # the user removed the files: forget the batch
        to_url(URL_BATCH, None)
    key = st.query_params.get(URL_BATCH)
    if not key:
        return []
    try:
        files = kept_batch(key)
    except PatchLensError as error:
        st.warning(str(error))
        to_url(URL_BATCH, None)
        return []
    st.info(
        f"The {len(files):,} patches of this link, kept in the workspace: drop patches above to score others."
    )
    return files


with page("Predict"):
    model_path = required_model_path()
    st.caption(
        f"Model: {md_escape(model_label(model_path))} — 96×96 px H&E patches; the label concerns the centre 32×32 px."
    )

    uploads = st.file_uploader(
        "Patches (96×96 px .tif, .png or .jpg; many at once)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="predict_uploads",
        help=KEPT_HELP,
    )
    files = batch_files(uploads)
    threshold = threshold_control()
    tta = st.checkbox("Test-time augmentation (average of 8 flips/rotations)", key="predict_tta")
    if not files:
        st.info("Drop patches above: each gets a probability, a call and a heatmap.")
        st.stop()

    batch = decode_uploads(files)
    for name, reason in batch.errors:
        st.error(f"**{md_escape(name)}** was not scored: {md_escape(reason)}")
    if not batch.names:
        st.stop()

    model = load_active_model()
    if model is None:
        st.stop()
    try:
        mtime = os.stat(model.patchlens_path).st_mtime
        probs, unlike_training = probabilities(
            model.patchlens_path, mtime, tta, tuple(batch.digests), model, batch.patches
        )
    except PatchLensError as error:
        st.error(f"The model could not score these patches: {md_escape(error)}")
        st.stop()

    batch = with_model_verdict(batch, unlike_training)
    spreads = upload_spreads(model, batch.patches, batch.digests, tta)  # issue 23: uncertainty
    if unlike_training is None:
        st.caption(NO_STATS_NOTE)
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

    st.subheader("Where the model looked")
    settings = explain_settings("predict")
    start, stop, n_pages = page_bounds(len(batch.names), 1, PAGE_SIZE)
    if n_pages > 1:
        from_url("predict_page", "predict_page", page_in(n_pages))
        page = st.number_input(
            f"Page (of {n_pages}, {PAGE_SIZE} patches each)", 1, n_pages, 1, key="predict_page"
        )
        to_url("predict_page", None if page == 1 else str(int(page)))
        start, stop, _ = page_bounds(len(batch.names), int(page), PAGE_SIZE)
    explained_page = explanation(
        model_path, batch.patches[start:stop], batch.digests[start:stop], settings, threshold
    )
    if explained_page is None:
        st.stop()
    scale_legend(explained_page, settings)
    maps = explained_page.heatmaps
    references = explained_page.references
    shown_method = method_name(settings["method"])
    for k in range(start, stop):
        prob = float(probs[k])
        original, explained, text = st.columns([1, 1, 1.2])
        patch = batch.patches[k]
        original.image(
            draw_centre_box(patch) if settings["box"] else patch, caption="original", width="stretch"
        )
        strength = describe_strength(
            explained_page.strengths[k - start], None if references is None else references[k - start]
        )
        explained.image(
            blend(patch, maps[k - start], settings), caption=f"{shown_method}, {strength}", width="stretch"
        )
        flags, withheld = quality_flags(batch.quality[k]), withholds(batch.quality[k])
        call = f":gray[{NOT_MEANINGFUL}]" if withheld else f"**{call_of(prob, threshold)}**"
        text.markdown(
            f"**{md_escape(short_name(batch.names[k], NAME_IN_TEXT))}**  \nP(tumour) **{prob:.4f}**  \ncall at {threshold:.3f}: {call}"
        )
        for flag in flags:
            text.badge(FLAG_BADGES[flag], icon="⚠️", color="orange", help=FLAG_MEANINGS[flag])
        uncertainty_badge(text, spreads, k)
        if withheld:
            text.caption("Not counted as a call: the input-quality check flagged this patch.")
        else:
            text.progress(prob)
            if flags:
                text.caption("Counted as a call, but unusual for this model: check it.")

    # --- similar patches (issue 12): the active dataset's patches nearest to an upload -----------
    similar_to_uploads(model, model_path, active_dataset(), batch.names, batch.patches)
