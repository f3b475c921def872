"""Feature map: the active model's penultimate-layer features of the active labelled dataset in 2-D,
a lasso/box selection opening a gallery of the selected patches (Grad-CAM on demand), and the
nearest neighbours of any patch in feature space ("what the model thinks this resembles").

Features are computed once per (model, dataset) and kept on disk (core.diagnose.features); the
scatter shows a stratified sample of at most SCATTER_SAMPLE points (TSNE_SAMPLE with t-SNE;
core.diagnose.projection).
"""

import os

import plotly.express as px
import streamlit as st

from core.data.dataset import DECODE_AT_OPEN_MAX
from core.diagnose.projection import (
    COLOUR_BY,
    METHOD_NAMES,
    METHODS,
    SCATTER_SAMPLE,
    TSNE_SAMPLE,
    ids_of_points,
    scatter_frame,
)
from core.errors import PatchLensError
from ui.frame import page
from ui.gallery import blend, explain_settings, heatmaps, patch_grid, with_box
from ui.prediction_source import prediction_jobs, threshold_control
from ui.shared import (
    DATASET_KEY,
    active_dataset,
    dataset_label,
    load_active_model,
    model_label,
    required_model_path,
)
from ui.similar import EXPLAINED, caption, features_at, index_at, k_control, lookup_of, neighbour_grid
from ui.text import md_escape
from ui.uncertainty import with_uncertainty

CHART_KEY = "feature_map_chart"
GALLERY_MAX = 24  # selected patches drawn at once
CATEGORY_COLOURS = {"normal": "#1f77b4", "tumour": "#d62728", "correct": "#2ca02c", "incorrect": "#d62728"}


@st.cache_data(show_spinner="Projecting to 2-D…", max_entries=8)
def _points(path: str, mtime: float, method: str):
    from core.diagnose.projection import scatter_points

    found = features_at(path, mtime)
    return scatter_points(found.features, found.labels, method)


def feature_file(model_path: str, dataset) -> str | None:
    """The cache file of the features. Not on disk yet: a dataset of at most DECODE_AT_OPEN_MAX patches
    is computed here at once (seconds, with a progress bar); a larger one by a background job on a
    click, which a reload or a second session finds again and which can be stopped."""
    from core.diagnose.features import cached_features, feature_cache_path

    path = feature_cache_path(model_path, dataset)
    if path.is_file():
        return str(path)
    if len(dataset) > DECODE_AT_OPEN_MAX:
        title = f"{model_label(model_path)} on {dataset_label(st.session_state.get(DATASET_KEY))}"
        prediction_jobs({model_path: title}, dataset, features=True, button="Compute the features",
                        key="feature_map_compute")  # fmt: skip
        return None
    model = load_active_model()
    if model is None:
        return None
    bar = st.progress(0.0, text="Computing features…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Computing features… {done:,}/{total:,} patches")

    found = cached_features(model_path, dataset, model=model, progress=progress)
    bar.empty()
    return found.cached


def checked_features(path: str, model_path: str, dataset):
    """(path, features) of the cache file; one that disagrees with its record is discarded and computed
    again (here, or by its job for a large dataset), and the page says so once."""
    from core.data.cache_records import DamagedCacheError, damaged_message, discard_cache

    try:
        return path, features_at(path, os.stat(path).st_mtime)
    except DamagedCacheError as error:
        discard_cache(path)
        st.warning(md_escape(damaged_message(path, str(error))), icon="⚠️")
    path = feature_file(model_path, dataset)
    if path is None:
        st.stop()
    return path, features_at(path, os.stat(path).st_mtime)


def sample_caption(drawn: int, total: int, method: str) -> str:
    limit = SCATTER_SAMPLE if method == "pca" else TSNE_SAMPLE
    shown = (
        f"A stratified sample of {drawn:,} of {total:,} patches (each label keeps its share; at most "
        f"{limit:,} are drawn with {METHOD_NAMES[method]})."
        if drawn < total
        else f"All {total:,} patches."
    )
    return shown + " Draw a lasso (or pick Box Select in the chart's toolbar) to see the patches inside."


def scatter(frame, colour: str):
    """The plotly scatter of the drawn points, coloured by `colour`; each point carries its id."""
    continuous = colour == "prob"
    figure = px.scatter(
        frame,
        x="x",
        y="y",
        color=colour,
        custom_data=["id"],
        hover_data={"id": True, "label": True, "prob": ":.3f", "quality": True, "x": False, "y": False},
        color_discrete_map=CATEGORY_COLOURS,
        color_continuous_scale="RdBu_r" if continuous else None,
        range_color=(0.0, 1.0) if continuous else None,
        category_orders={"label": ["normal", "tumour"], "call": ["normal", "tumour"]},
    )
    figure.update_traces(marker={"size": 6, "opacity": 0.8})
    figure.update_layout(
        dragmode="lasso", height=560, margin=dict(t=10, b=10, l=10, r=10), legend_title_text=COLOUR_BY[colour]
    )
    figure.update_xaxes(title=None, showticklabels=False)
    figure.update_yaxes(title=None, showticklabels=False)
    return figure


def selected_gallery(ids: list[str], lookup, found, model_path: str, threshold: float) -> None:
    """The selected patches (at most GALLERY_MAX) with their label and probability; Grad-CAM on demand."""
    wrong = sum(
        int(found.probs[found.position(i)] >= threshold) != found.labels[found.position(i)] for i in ids
    )
    st.subheader(f"Selected patches ({len(ids):,})")
    st.caption(f"{len(ids) - wrong:,} correct and {wrong:,} incorrect at {threshold:.3f}"
               + (f"; showing the first {GALLERY_MAX}." if len(ids) > GALLERY_MAX else "."))  # fmt: skip
    explain = st.toggle("Grad-CAM", False, key="feature_map_explain", help="Heatmaps of the patches shown.")
    settings = explain_settings("feature_map") if explain else {"box": True}
    patches, shown, missing = lookup.read(ids[:GALLERY_MAX])
    maps = heatmaps(model_path, patches, shown, settings, threshold) if explain else None
    images = [
        blend(patch, maps[k], settings) if maps is not None else with_box(patch, settings["box"])
        for k, patch in enumerate(patches)
    ]
    patch_grid(images, [caption(found, item) for item in shown])
    if missing:
        st.caption(
            f"{len(missing)} patch(es) could not be read: " + md_escape("; ".join(list(missing.values())[:3]))
        )


def similar_patches(choices: list[str], index, lookup, found) -> None:
    """A chosen patch of the map and its k nearest neighbours in feature space."""
    st.subheader("Similar patches")
    st.caption(f"The patches nearest to a chosen one in the model's feature space: what the model thinks it "
               f"resembles. {EXPLAINED}")  # fmt: skip
    left, right = st.columns([3, 1])
    chosen = left.selectbox("Patch", choices, format_func=lambda i: f"{i} · {caption(found, i)}",
                            key="feature_map_query")  # fmt: skip
    table = index.by_id(chosen, k_control("feature_map_k", right))
    neighbour_grid(table, lookup, found, key="feature_map")


# --- the page --------------------------------------------------------------------------------

with page("Feature map"):
    model_path = required_model_path()
    dataset = active_dataset()
    if dataset is None:
        st.stop()
    dataset_path = st.session_state.get(DATASET_KEY)
    if dataset.labels is None:
        st.info(f"{md_escape(dataset_label(dataset_path))} is unlabelled: the feature map colours and samples patches by "
                "their labels. Open a labelled dataset, or score these patches on the Predict page.")  # fmt: skip
        st.stop()
    st.caption(f"{md_escape(model_label(model_path))} on {md_escape(dataset_label(dataset_path))}: the input of the model's final "
               "Dense layer (its penultimate-layer features), one point a patch.")  # fmt: skip
    try:
        path = feature_file(model_path, dataset)
    except PatchLensError as error:
        st.error(f"The features could not be computed: {md_escape(error)}")
        st.stop()
    if path is None:
        st.stop()
    path, found = checked_features(path, model_path, dataset)
    mtime = os.stat(path).st_mtime
    if found.skipped:
        st.caption(f"{len(found.skipped):,} patches could not be read and are left out.")
    threshold = threshold_control()

    controls = st.columns([1, 2])
    method = controls[0].radio("Projection", METHODS, format_func=METHOD_NAMES.get, horizontal=True,
                               key="feature_map_method")  # fmt: skip
    colours = [c for c in COLOUR_BY if c != "slide" or found.groups is not None]
    colour = controls[1].selectbox("Colour by", colours, format_func=COLOUR_BY.get, key="feature_map_colour")
    try:
        rows, xy = _points(path, mtime, method)
    except PatchLensError as error:
        st.error(md_escape(error))
        st.stop()

    frame = with_uncertainty(scatter_frame(found, rows, xy, threshold), model_path, dataset)  # issue 23
    st.caption(sample_caption(len(rows), len(found), method))
    event = st.plotly_chart(scatter(frame, colour), key=CHART_KEY, on_select="rerun",
                            selection_mode=("lasso", "box"), width="stretch")  # fmt: skip

    lookup = lookup_of(dataset)
    selected = ids_of_points(event.selection.points) if event else []
    if selected:
        selected_gallery(selected, lookup, found, model_path, threshold)
    else:
        st.caption("Nothing selected yet.")

    choices = selected or frame["id"].tolist()
    similar_patches(choices, index_at(path, mtime), lookup, found)
