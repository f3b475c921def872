"""Similar patches for the Feature map and Predict pages: the nearest neighbours of a patch in the
active model's feature space, drawn as a grid with their labels, probabilities and distances.

The features of the active dataset are read from the on-disk cache (core.diagnose.features) and
shared by every session (ui.cache), with their nearest-neighbour index. Only the Feature map
page computes them; Predict uses them when they exist and otherwise says where to get them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.constants import LABEL_NAMES
from core.diagnose.neighbours import DEFAULT_K
from ui.cache import features_at, index_at, lookup_of
from ui.gallery import patch_grid, with_box
from ui.text import md_escape

MAX_K = 48
FEATURES_NEEDED = (
    "Similar patches come from the features of the active model on the active dataset: open the Feature "
    "map page once to compute them."
)
EXPLAINED = "Distances are Euclidean between penultimate-layer features (the input of the final Dense layer)."


def caption(found, item: str, prefix: str = "") -> str:
    """'<label> · p=<P(tumour)>' of a patch of the features, after `prefix`."""
    row = found.position(item)
    label = found.labels[row]
    name = LABEL_NAMES.get(int(label), "?") if label == label else "unlabelled"
    return f"{prefix}{name} · p={found.probs[row]:.3f}"


def k_control(key: str, column=None) -> int:
    return int((column or st).number_input("Neighbours (k)", 1, MAX_K, DEFAULT_K, key=key))


def neighbour_grid(
    table: pd.DataFrame, lookup, found, first: tuple[np.ndarray, str] | None = None, key: str = ""
) -> None:
    """The neighbours of `table` (rank 0 = the query itself, when present) as a grid, then as a table;
    `first` = (pixels, caption) of a query patch that is not in the dataset (an upload)."""
    patches, shown, _ = lookup.read(table["id"].tolist())
    by_id = table.set_index("id")
    images = [with_box(patch, True) for patch in patches]
    captions = [
        caption(
            found, item, "this patch · " if rank == 0 else f"#{rank} · d={by_id.loc[item, 'distance']:.2f} · "
        )
        for item, rank in zip(shown, by_id.loc[shown, "rank"], strict=True)
    ]
    if first is not None:
        images.insert(0, with_box(first[0], True))
        captions.insert(0, first[1])
    patch_grid(images, captions)
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}_neighbours")


def cached_features_of(model_path: str, dataset):
    """(cache path, FeatureSet) of the model's features on `dataset` when they are cached; else None
    after a caption that says how to get them."""
    from core.diagnose.features import feature_cache_path

    path = feature_cache_path(model_path, dataset) if dataset is not None else None
    if path is None or not path.is_file():
        st.caption(FEATURES_NEEDED)
        return None
    from core.data.cache_records import DamagedCacheError, discard_cache

    try:
        return str(path), features_at(path)
    except DamagedCacheError as error:  # never used: discarded, to be computed again
        discard_cache(path)
        st.caption(
            f"The cached features {path.name} were damaged ({md_escape(error)}) and were discarded. {FEATURES_NEEDED}"
        )
        return None


def similar_in_dataset(model_path: str, dataset, item: str, key: str) -> None:
    """A section: the patches of `dataset` nearest to its patch `item` in the model's feature space,
    when the features of the model on the dataset are cached; else a caption that says how to get them."""
    from core.errors import DatasetError

    st.markdown("**Similar patches** — what the model thinks this patch resembles")
    cached = cached_features_of(model_path, dataset)
    if cached is None:
        return
    path, found = cached
    try:
        found.position(item)
    except DatasetError:
        st.caption(f"{md_escape(item)} is not among the cached features of the active dataset.")
        return
    table = index_at(path).by_id(item, k_control(f"{key}_k"))
    neighbour_grid(table, lookup_of(dataset), found, key=key)


def similar_to_uploads(model, model_path: str, dataset, names: list[str], patches: np.ndarray) -> None:
    """Predict's section: the active dataset's patches nearest to a chosen upload, when the features of
    the active model on the active dataset are cached; else a caption that says how to get them."""
    from core.diagnose.features import patch_features

    st.subheader("Similar patches")
    cached = cached_features_of(model_path, dataset)
    if cached is None:
        return
    path, found = cached
    st.caption(f"The {len(found):,} patches of the active dataset nearest to an upload in the model's feature "
               f"space: what the model thinks it resembles. {EXPLAINED}")  # fmt: skip
    left, right = st.columns([3, 1])
    chosen = left.selectbox("Upload", range(len(names)), format_func=names.__getitem__, key="predict_similar")
    k = k_control("predict_similar_k", right)
    vector, _ = patch_features(model, patches[chosen])
    table = index_at(path).by_vector(vector[0], k)
    neighbour_grid(table, lookup_of(dataset), found, (patches[chosen], "this upload"), key="predict_similar")
