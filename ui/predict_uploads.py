"""The Predict page's uploads: the uploader, the batch kept in the workspace and named in the URL (so a
reload or a copied link shows the same results, core.evaluate.kept_uploads), and its decoding with one
error per file that cannot be read.

Session state keys: predict_uploads (the uploader), predict_had_uploads (it held files last run).
"""

from __future__ import annotations

import streamlit as st

from core.errors import PatchLensError
from core.evaluate.kept_uploads import keep_batch, kept_batch
from core.evaluate.uploads import decode_uploads
from ui.shared import to_url
from ui.text import md_escape

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


def uploaded_files() -> list[tuple[str, bytes]]:
    """The uploader, then the (name, bytes) to score: its files, or the batch the URL names."""
    uploads = st.file_uploader(
        "Patches (96×96 px .tif, .png or .jpg; many at once)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="predict_uploads",
        help=KEPT_HELP,
    )
    return batch_files(uploads)


def batch_files(uploads) -> list[tuple[str, bytes]]:
    """The (name, bytes) to score: the uploader's files, kept in the workspace and named in the URL;
    without any, the batch the URL names (a reload, a copied link). Emptying the uploader forgets it."""
    if uploads:
        files = [(upload.name, upload.getvalue()) for upload in uploads]
        try:
            to_url(URL_BATCH, keep_batch(files))
            st.caption(KEPT_NOTE)
        except PatchLensError as error:  # a warning, not an error: the results are still shown
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


def decoded(files: list[tuple[str, bytes]]):
    """The decoded batch (core.evaluate.uploads), after one error per file that cannot be read; the page
    stops when none can."""
    batch = decode_uploads(files)
    for name, reason in batch.errors:
        st.error(f"**{md_escape(name)}** was not scored: {md_escape(reason)}")
    if not batch.names:
        st.stop()
    return batch
