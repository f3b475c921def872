"""The Region page's inputs: which image (a path in the data roots or an upload), its resolution and
the stride, and their place in the URL (`region_image`, `region_stride`, `region_mpp`), so a reload finds
its job again. An upload is saved and checked by core.region.uploads (a refused one is not kept).

Session state keys (one home for each):
  region_source   "path" or "upload"        region_path    the typed path
  region_upload   the uploader              region_mpp     µm/px typed for a file without one
  region_stride   the stride                region_refused {upload digest: why it was refused}
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from core.constants import PCAM_MPP
from core.errors import PatchLensError
from core.jobs.status import ACTIVE_STATES
from core.region.jobs import list_jobs
from core.region.reader import (
    PLAIN_EXTENSIONS,
    REGION_EXTENSIONS,
    SLIDE_EXTENSIONS,
    TIFF_EXTENSIONS,
    open_region_image,
    plausible_mpp,
)
from core.region.tiling import DEFAULT_STRIDE, STRIDES
from core.region.uploads import save_upload
from core.settings import check_allowed
from ui.boundary import error_boundary
from ui.cache import FileKey, file_key
from ui.shared import extra_roots
from ui.text import md_escape

SOURCE_KEY = "region_source"
PATH_KEY = "region_path"
UPLOAD_KEY = "region_upload"
MPP_KEY = "region_mpp"
STRIDE_KEY = "region_stride"
REFUSED_KEY = "region_refused"  # {upload digest: why it was refused}, so it is not saved again
URL_IMAGE, URL_STRIDE, URL_MPP = "region_image", "region_stride", "region_mpp"
SOURCES = {"path": "A file in the data roots", "upload": "Upload a file"}


def _listed(extensions: tuple[str, ...]) -> str:
    return ", ".join(extensions)


# The formats in words, from core's table of readers (core.region.reader): never typed again here.
FORMATS_HELP = (
    f"Images ({_listed(PLAIN_EXTENSIONS)}), TIFF (tiled, pyramidal, OME-TIFF: {_listed(TIFF_EXTENSIONS)}) or a "
    f"slide OpenSlide reads ({_listed(SLIDE_EXTENSIONS)}); only files inside the data roots."
)


def state_from_url() -> None:
    """A new session opens the image, stride and resolution its URL names (so a reload does)."""
    if PATH_KEY in st.session_state:
        return
    params = st.query_params
    if params.get(URL_IMAGE):
        st.session_state[SOURCE_KEY], st.session_state[PATH_KEY] = "path", params[URL_IMAGE]
    stride, mpp = _number(params.get(URL_STRIDE)), _number(params.get(URL_MPP))
    if stride in STRIDES:
        st.session_state[STRIDE_KEY] = int(stride)
    if plausible_mpp(mpp) is not None:
        st.session_state[MPP_KEY] = mpp


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def state_to_url(image: Path | None, stride: int | None = None, mpp: float | None = None) -> None:
    """Write the chosen image, a stride other than the default and a resolution typed by hand into
    the URL (only these keys: the others belong to the other pages)."""
    wanted = {URL_IMAGE: str(image) if image else None,
              URL_STRIDE: str(stride) if image and stride and stride != DEFAULT_STRIDE else None,
              URL_MPP: repr(float(mpp)) if image and mpp is not None else None}  # fmt: skip
    for key, value in wanted.items():
        if value is None and key in st.query_params:
            del st.query_params[key]
        elif value is not None and st.query_params.get(key) != value:
            st.query_params[key] = value


def uploaded_path(upload) -> Path | None:
    """The upload saved and checked (core.region.uploads), or None after saying why it is refused."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    refused = st.session_state.setdefault(REFUSED_KEY, {})
    if digest not in refused:
        in_use = {job["image"] for job in list_jobs() if job["state"] in ACTIVE_STATES}
        try:
            return save_upload(upload.name, data, in_use=in_use)
        except PatchLensError as error:
            refused[digest] = str(error)
    st.error(f"This upload is refused and was not kept: {md_escape(refused[digest])}")
    return None


def chosen_image() -> Path | None:
    """The image the user chose (checked against the data roots), or None after saying why not."""
    source = st.radio("Image", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=SOURCE_KEY)
    if source == "upload":
        upload = st.file_uploader(
            "A region image or slide", type=[e.lstrip(".") for e in REGION_EXTENSIONS], key=UPLOAD_KEY
        )
        return uploaded_path(upload) if upload is not None else None
    text = st.text_input(
        "Path of a region image or slide",
        key=PATH_KEY,
        placeholder="/data/slides/case-17.svs",
        help=FORMATS_HELP,
    )
    if not text.strip():
        return None
    with error_boundary():
        return check_allowed(text, extra_roots())
    return None


@st.cache_data(show_spinner=False, max_entries=16)
def _image_info(image: FileKey) -> dict:
    with open_region_image(image.path) as image:
        return {"width": image.width, "height": image.height, "mpp": image.mpp, "reader": image.backend,
                "levels": len(image.level_sizes)}  # fmt: skip


def image_info(path: Path) -> dict | None:
    """Size, levels, resolution and reader of the image at `path`, or None after saying why it cannot
    be read."""
    with error_boundary():
        return _image_info(file_key(path))
    return None


def resolution(info: dict) -> float | None:
    """The image's µm/px: the file's, or what the user enters when the file carries none."""
    if info["mpp"] is not None:
        st.caption(f"Resolution from the file: {info['mpp']:.4g} µm/px.")
        return info["mpp"]
    st.warning("This file does not say how many µm a pixel is: enter its resolution to score it.")
    return st.number_input("µm per pixel", min_value=0.05, max_value=50.0, value=None, step=0.01,
                           format="%.4f", key=MPP_KEY, help=f"The model sees {PCAM_MPP} µm/px (PCam, 10×).")  # fmt: skip
