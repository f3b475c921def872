"""The Dataset page's one patch in detail: the patch, its id, label, quality and source, its colour
histogram, and (when opened) the patch under Macenko and Reinhard stain normalisation."""

from __future__ import annotations

import hashlib

import plotly.express as px
import streamlit as st

from core.data.images import draw_centre_box
from core.data.normalise import META_KEY, StainNormaliser
from core.data.quality import quality_labels
from core.data.stats import channel_histograms, label_name
from core.errors import PatchLensError
from core.formatting import quality_words
from ui.boundary import error_boundary
from ui.cache import dataset_key
from ui.shared import active_model_path
from ui.text import md_code, md_escape

STAIN_KEY = (
    "dataset_stain"  # the "Stain normalisation" expander's open state (its content runs only when open)
)
STAIN_METHODS = ("macenko", "reinhard")
STAIN_SAMPLE = 128  # patches of the dataset a reference is picked from when the model has none


def scoped(name: str, path: str) -> str:
    """A widget key that belongs to one dataset (its path)."""
    return f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:10]}"


def patch_detail(dataset, path: str, on_page, with_box: bool) -> None:
    st.subheader("One patch in detail")
    choice = st.selectbox(
        "Patch", on_page.tolist(), format_func=lambda i: dataset.ids[i], key=scoped("detail_patch", path)
    )
    with error_boundary() as outcome:
        patch = dataset.read_patch(choice)
    if outcome.failed:
        return
    left, right = st.columns([1, 2])
    left.image(draw_centre_box(patch) if with_box else patch, width=288)
    label = label_name(dataset.labels[choice]) if dataset.labels is not None else "unlabelled"
    left.markdown(
        f"**id** {md_code(dataset.ids[choice])}  \n**label** {label}  \n"
        f"**quality** {quality_words(quality_labels(patch)[0])}  \n**source** {md_code(dataset.source_of(choice))}"
    )
    histogram = px.line(
        channel_histograms(patch),
        x="value",
        y="count",
        color="channel",
        color_discrete_map={"red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4"},
    )
    histogram.update_layout(height=300, margin=dict(t=20, b=20), xaxis_title="pixel value")
    right.plotly_chart(histogram, width="stretch")
    stain_preview(dataset, path, patch)


@st.cache_data(show_spinner="Picking a stain reference from the dataset…", max_entries=16)
def _dataset_reference(content: tuple[str, int, str], method: str, _dataset) -> StainNormaliser:
    import numpy as np

    rows = np.sort(np.random.default_rng(0).permutation(len(_dataset))[:STAIN_SAMPLE])
    patches, kept, _ = _dataset.read_tolerant(rows.tolist())
    return StainNormaliser(method).fit(patches, ids=[_dataset.ids[i] for i in kept])


def model_normaliser() -> StainNormaliser | None:
    """The active model's stain normaliser, read from its file's metadata (no TensorFlow)."""
    from core.model.io import read_model_meta, resolve_model_path

    path = active_model_path()
    try:
        meta = read_model_meta(resolve_model_path(path)).get(META_KEY) if path else None
    except PatchLensError:  # not an error here: without a readable model, no model reference is shown
        return None
    return StainNormaliser.from_meta(meta) if meta else None


def stain_preview(dataset, path: str, patch) -> None:
    """The chosen patch before and after Macenko and Reinhard normalisation, drawn only when open."""
    expander = st.expander("Stain normalisation", key=STAIN_KEY, on_change="rerun")
    if not expander.open:
        return
    with expander:
        own = model_normaliser()
        columns = st.columns(1 + len(STAIN_METHODS))
        columns[0].image(patch, caption="as stored", width="stretch")
        for column, method in zip(columns[1:], STAIN_METHODS):
            if own is not None and own.method == method:
                normaliser, source = own, "the active model's reference"
            else:
                try:
                    normaliser = _dataset_reference(dataset_key(dataset), method, dataset)
                except PatchLensError as error:
                    column.info(f"{method}: {md_escape(error)}")
                    continue
                source = f"reference {normaliser.reference.get('id', '?')} of this dataset"
            column.image(normaliser.transform(patch), caption=f"{method} · {source}", width="stretch")
        st.caption(
            "A model trained with stain normalisation (Train page) applies its own reference wherever it "
            "scores a patch; background and flat patches pass unchanged."
        )
