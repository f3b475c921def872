"""Feature map: the active model's penultimate-layer features of the active labelled dataset in 2-D,
a lasso/box selection opening a gallery of the selected patches (Grad-CAM on demand), and the
nearest neighbours of any patch in feature space ("what the model thinks this resembles").

Features are computed once per (model, dataset) and kept on disk (core.diagnose.features); the
scatter shows a stratified sample of at most SCATTER_SAMPLE points (TSNE_SAMPLE with t-SNE;
core.diagnose.projection).
"""

import streamlit as st

from ui.cache import index_at, lookup_of
from ui.feature_files import page_features
from ui.feature_map import feature_scatter, selected_gallery, similar_patches
from ui.frame import page
from ui.shared import DATASET_KEY, active_dataset, dataset_label, model_label, required_model_path
from ui.text import md_escape
from ui.threshold import threshold_control

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
    path, found = page_features(model_path, dataset)
    threshold = threshold_control()
    selected, drawn = feature_scatter(path, found, threshold, model_path, dataset)
    lookup = lookup_of(dataset)
    if selected:
        selected_gallery(selected, lookup, found, model_path, threshold)
    else:
        st.caption("Nothing selected yet.")
    similar_patches(selected or drawn, index_at(path), lookup, found)
