"""Region: a tumour-probability heatmap over a region image or a whole slide.

Choose an image inside the data roots (or upload one), set its resolution when the file does not
carry it, and compute the heatmap: it runs as a background job in its own process
(core.region.jobs), found again by its key after a reload or from a second session, and stoppable.
The finished map is drawn over the thumbnail in plotly (pan, zoom; opacity, colormap, threshold
contour); a click on a tile (or its row and column) shows the patch the model saw, its probability,
its quality flags and its Grad-CAM. The job runs at the default threshold; everything that depends
on the threshold (contour, tumour area) is recomputed here from the stored probabilities.

The image, stride and resolution typed live in the URL (`region_image`, `region_stride`,
`region_mpp`), so a reload finds its job again; the running and recent jobs are listed, each with
Open. An upload is saved and checked by core.region.uploads (a refused one is not kept).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.constants import DEFAULT_THRESHOLD, PCAM_MPP
from core.region.tiling import DEFAULT_STRIDE, STRIDES
from ui.boundary import error_boundary
from ui.frame import page
from ui.region_inputs import STRIDE_KEY, chosen_image, image_info, resolution, state_from_url, state_to_url
from ui.region_jobs import heatmap_job, jobs_overview
from ui.region_results import results
from ui.shared import model_label, required_model_path
from ui.text import md_escape


def image_settings(image_path: Path) -> tuple[int, float | None]:
    """The image's size in a caption, then its resolution (the file's or typed) and the stride."""
    info = image_info(image_path)
    if info is None:
        st.stop()
    st.caption(f"{md_escape(image_path.name)}: {info['width']:,} × {info['height']:,} px, {info['levels']} level(s), "
               f"read with {info['reader']}.")  # fmt: skip
    mpp = resolution(info)
    st.session_state.setdefault(STRIDE_KEY, DEFAULT_STRIDE)
    stride = st.selectbox("Stride (px at the model's resolution)", STRIDES, key=STRIDE_KEY,
                          help="96 = tiles side by side; 48 or 32 overlap and average (4× or 9× the work).")  # fmt: skip
    state_to_url(image_path, stride, mpp if info["mpp"] is None else None)
    return stride, mpp


def heatmap_key(model_path: str, image_path: Path, stride: int, mpp: float) -> str:
    """The key of the heatmap job of these inputs (what a reload finds it by)."""
    from core.region.jobs import job_key

    with error_boundary(stop=True):
        return job_key(model_path, image_path, stride=stride, mpp=mpp, threshold=DEFAULT_THRESHOLD)


with page("Region"):
    model_path = required_model_path()
    st.caption(
        f"Model: {md_escape(model_label(model_path))} — scores 96 px tiles at {PCAM_MPP} µm/px over the tissue."
    )
    state_from_url()
    jobs_overview()
    image_path = chosen_image()
    state_to_url(image_path)
    if image_path is None:
        st.info("Choose a region image or a whole slide: the model scores every tissue tile into a heatmap.")
        st.stop()
    stride, mpp = image_settings(image_path)
    if mpp is None:
        st.stop()
    job = heatmap_key(model_path, image_path, stride, float(mpp))
    outputs = heatmap_job(job, model_path, image_path, stride, float(mpp))
    if outputs is not None:
        results(job, image_path, model_path, outputs)
