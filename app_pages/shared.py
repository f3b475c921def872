"""What every page shares: the active dataset and model, cached loaders, error display.

Session state keys (one home for each):
  dataset_path   the active dataset (default: the bundled sample)
  model_path     the active model (default: the bundled baseline, when present)
  extra_roots    data roots added in the sidebar settings, on top of PATCHLENS_DATA_ROOTS
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core.errors import PatchLensError
from core.runs import list_runs
from core.settings import BASELINE_MODEL, DATA_ROOTS_ENV, SAMPLE_DATASET, check_allowed, data_roots

DATASET_KEY = "dataset_path"
MODEL_KEY = "model_path"
ROOTS_KEY = "extra_roots"


def init_state() -> None:
    st.session_state.setdefault(DATASET_KEY, str(SAMPLE_DATASET))
    st.session_state.setdefault(MODEL_KEY, str(BASELINE_MODEL) if BASELINE_MODEL.exists() else None)
    st.session_state.setdefault(ROOTS_KEY, [])


def extra_roots() -> list[str]:
    return list(st.session_state.get(ROOTS_KEY, []))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Opening the dataset…", max_entries=8)
def _open_dataset(path: str, mtime: float):
    from core.datasets import open_dataset

    return open_dataset(path)


def active_dataset():
    """The active dataset, or None after showing why it cannot be opened."""
    path = st.session_state.get(DATASET_KEY) or str(SAMPLE_DATASET)
    try:
        return _open_dataset(path, _mtime(path))
    except PatchLensError as error:
        st.error(f"The dataset {path} cannot be opened: {error}")
        return None


def open_dataset_from_user(text: str):
    """Check a user-typed path against the data roots, open it and make it active.

    Returns the dataset, or None after showing a clear error.
    """
    try:
        path = check_allowed(text, extra_roots())
        dataset = _open_dataset(str(path), _mtime(str(path)))
    except PatchLensError as error:
        st.error(str(error))
        return None
    st.session_state[DATASET_KEY] = str(path)
    return dataset


def active_model_path() -> str | None:
    path = st.session_state.get(MODEL_KEY)
    if path and Path(path).exists():
        return path
    return None


@st.cache_resource(show_spinner="Loading the model (TensorFlow starts once, ~10 s)…", max_entries=4)
def load_model_cached(path: str, mtime: float):
    from core.models import load_model

    return load_model(path)


def load_active_model():
    """The active Keras model, shared by every session (cache_resource), or None with a message."""
    path = active_model_path()
    if path is None:
        st.warning("No model is active. Train one on the Train page or restore models/baseline.keras.")
        return None
    try:
        from core.models import resolve_model_path

        resolved = str(resolve_model_path(path))
        return load_model_cached(resolved, _mtime(resolved))
    except PatchLensError as error:
        st.error(str(error))
        return None


def model_label(path: str | None) -> str:
    if not path:
        return "none"
    p = Path(path)
    if p == BASELINE_MODEL:
        return "bundled baseline"
    return p.parent.name if p.name in ("model.keras", "best.keras") else p.name


def dataset_label(path: str | None) -> str:
    if not path:
        return "none"
    p = Path(path)
    return "bundled sample" if p == SAMPLE_DATASET else p.name


def render_sidebar() -> None:
    """The dataset and model pickers and the data-roots setting, drawn by every page.

    Drawn from the page (not the entry script): AppTest drops entry-script sidebar elements on reruns.
    """
    init_state()
    with st.sidebar:
        st.markdown("### Active dataset")
        st.caption(dataset_label(st.session_state[DATASET_KEY]))
        text = st.text_input(
            "Open a dataset by path",
            key="open_path",
            placeholder="/path/to/kaggle-folder, PCam .h5 folder, or class folders",
            help="Kaggle folder of .tif + train_labels.csv, PCam HDF5 files, class folders 0/ and 1/, "
            "or a cache .h5. Only paths inside the data roots can be opened.",
        )
        if st.button("Open", key="open_dataset") and text:
            if open_dataset_from_user(text) is not None:
                st.success(f"Opened {text}")

        st.markdown("### Active model")
        options = {}
        if BASELINE_MODEL.exists():
            options[str(BASELINE_MODEL)] = "bundled baseline"
        for run in list_runs():
            if run.has_model:
                options[str(run.model_path)] = f"run {run.name}" + (
                    "" if run.state == "finished" else f" ({run.state})"
                )
        current = st.session_state.get(MODEL_KEY)
        if current and current not in options:
            options[current] = model_label(current)
        if options:
            keys = list(options)
            chosen = st.selectbox(
                "Model",
                keys,
                index=keys.index(current) if current in keys else 0,
                format_func=options.get,
                label_visibility="collapsed",
            )
            st.session_state[MODEL_KEY] = chosen
        else:
            st.caption("No model yet: train one on the Train page.")

        with st.expander("Settings: data roots"):
            st.caption(f"Datasets may be opened from these folders (extend with {DATA_ROOTS_ENV}):")
            for root in data_roots(st.session_state[ROOTS_KEY]):
                st.code(str(root), language=None)
            new_root = st.text_input("Add a data root for this session", key="new_root")
            if st.button("Add root") and new_root.strip():
                if Path(new_root).expanduser().is_dir():
                    st.session_state[ROOTS_KEY] = [*st.session_state[ROOTS_KEY], new_root.strip()]
                    st.rerun()
                else:
                    st.error(f"{new_root} is not a folder.")
