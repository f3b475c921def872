"""The Feature map's views: the 2-D projection of the features (cached per features file and method),
its plotly scatter with a lasso, the gallery of the selected patches (Grad-CAM on demand) and the
nearest neighbours of a chosen patch.

Session state keys: feature_map_chart, feature_map_explain, feature_map_query, feature_map_k.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.diagnose.projection import (
    COLOUR_BY,
    METHOD_NAMES,
    METHODS,
    SCATTER_SAMPLE,
    TSNE_SAMPLE,
    ids_of_points,
    scatter_frame,
)
from ui.boundary import error_boundary
from ui.cache import FileKey, features_at, file_key
from ui.gallery import blend, explain_settings, heatmaps, patch_grid, with_box
from ui.similar import EXPLAINED, caption, k_control, neighbour_grid
from ui.text import md_escape
from ui.uncertainty import with_uncertainty

CHART_KEY = "feature_map_chart"
GALLERY_MAX = 24  # selected patches drawn at once
CATEGORY_COLOURS = {"normal": "#1f77b4", "tumour": "#d62728", "correct": "#2ca02c", "incorrect": "#d62728"}


@st.cache_data(show_spinner="Projecting to 2-D…", max_entries=8)
def _points(features: FileKey, method: str):
    from core.diagnose.projection import scatter_points

    found = features_at(features.path)
    return scatter_points(found.features, found.labels, method)


def feature_scatter(
    path: str, found, threshold: float, model_path: str, dataset
) -> tuple[list[str], list[str]]:
    """The projection and colour controls, then the lasso scatter of the features at `path`; returns
    (ids selected, ids drawn). The page stops after a message when they cannot be projected."""
    controls = st.columns([1, 2])
    method = controls[0].radio("Projection", METHODS, format_func=METHOD_NAMES.get, horizontal=True,
                               key="feature_map_method")  # fmt: skip
    colours = [c for c in COLOUR_BY if c != "slide" or found.groups is not None]
    colour = controls[1].selectbox("Colour by", colours, format_func=COLOUR_BY.get, key="feature_map_colour")
    with error_boundary(stop=True):
        rows, xy = _points(file_key(path), method)
    frame = with_uncertainty(scatter_frame(found, rows, xy, threshold), model_path, dataset)  # issue 23
    st.caption(sample_caption(len(rows), len(found), method))
    event = st.plotly_chart(scatter(frame, colour), key=CHART_KEY, on_select="rerun",
                            selection_mode=("lasso", "box"), width="stretch")  # fmt: skip
    selected = ids_of_points(event.selection.points) if event else []
    return selected, frame["id"].tolist()


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
