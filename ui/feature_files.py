"""The Feature map's features: the cache file of the active model's features on the active dataset,
computed here at once for a small dataset (with a progress bar) or by a background job for a large one
(ui.prediction_jobs), and read through ui.cache; a damaged cache is discarded and computed again."""

from __future__ import annotations

import streamlit as st

from ui.boundary import error_boundary
from ui.cache import features_at
from ui.prediction_jobs import prediction_jobs
from ui.shared import DATASET_KEY, dataset_label, load_active_model, model_label
from ui.text import md_escape


def feature_file(model_path: str, dataset) -> str | None:
    """The cache file of the features. Not on disk yet: a dataset of at most DECODE_AT_OPEN_MAX patches
    is computed here at once (seconds, with a progress bar); a larger one by a background job on a
    click, which a reload or a second session finds again and which can be stopped."""
    from core.data.dataset import DECODE_AT_OPEN_MAX  # read at each call: a setting of the dataset layer
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
        return path, features_at(path)
    except DamagedCacheError as error:
        discard_cache(path)
        st.warning(md_escape(damaged_message(path, str(error))), icon="⚠️")
    path = feature_file(model_path, dataset)
    if path is None:
        st.stop()
    return path, features_at(path)


def page_features(model_path: str, dataset):
    """(cache path, FeatureSet) of the active model on `dataset`, computed or followed as needed; the
    page stops while they are not there (or after saying why they cannot be computed)."""
    with error_boundary("The features could not be computed", stop=True):
        path = feature_file(model_path, dataset)
    if path is None:
        st.stop()
    path, found = checked_features(path, model_path, dataset)
    if found.skipped:
        st.caption(f"{len(found.skipped):,} patches could not be read and are left out.")
    return path, found
