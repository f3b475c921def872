"""The UI's one cache of heavy objects shared by every session: models, explainers, open datasets, the
patch look-ups of datasets, and the features of a (model, dataset) with their neighbour index.

One key for everything read from a file: `FileKey` (the path, its mtime in nanoseconds and its size),
so a file changed in place is read again and the background warm-up (ui.warmup) fills exactly the entries
the pages then hit. One key for everything derived from an open dataset: `dataset_key` (path, length,
content fingerprint). Functions that take the object itself (`_dataset`) leave it out of Streamlit's hash.

st.cache_resource works from a thread without a script-run context (it only skips its spinner), which
is how the warm-up fills it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import streamlit as st


class FileKey(NamedTuple):
    """What identifies one version of a file: its path, modification time (ns) and size."""

    path: str
    mtime_ns: int
    size: int


def file_key(path: str | Path) -> FileKey:
    """The key of `path` as it is now; (path, 0, -1) when it cannot be read (the loader then says why)."""
    try:
        status = os.stat(path)
    except OSError:
        return FileKey(str(path), 0, -1)
    return FileKey(str(path), status.st_mtime_ns, status.st_size)


def model_key(path: str | Path) -> FileKey:
    """The key of the model file behind `path` (a .keras file or a run folder); ModelError if none."""
    from core.model.io import resolve_model_path

    return file_key(str(resolve_model_path(path)))


def dataset_key(dataset) -> tuple[str, int, str]:
    """(path, number of patches, content fingerprint): one open dataset's content, for every cache of
    something derived from it."""
    return str(dataset.path), len(dataset), repr(getattr(dataset, "fingerprint", ()))


# --------------------------------------------------------------------------- models and explainers


@st.cache_resource(show_spinner="Loading the model (TensorFlow starts once, ~10 s)…", max_entries=4)
def _model(key: FileKey):
    from core.model.io import load_model

    return load_model(key.path)


def model_at(path: str | Path):
    """The Keras model behind `path`, loaded once per file version; PatchLensError when it cannot be."""
    return _model(model_key(path))


@st.cache_resource(show_spinner="Preparing the explainer…", max_entries=4)
def _explainer(key: FileKey):
    from core.evaluate.explain import Explainer

    return Explainer(_model(key))


def explainer_at(path: str | Path):
    """The Explainer of the model behind `path`, built once per file version on the cached model."""
    return _explainer(model_key(path))


# --------------------------------------------------------------------------- datasets


@st.cache_resource(show_spinner="Opening the dataset…", max_entries=8)
def _dataset(key: FileKey):
    from core.data.dataset import open_checked

    return open_checked(key.path)


def dataset_at(path: str | Path):
    """The dataset at `path` (already checked against the data roots), opened once per version."""
    return _dataset(file_key(path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _lookup(key: tuple[str, int, str], _dataset):
    from core.evaluate.sources import dataset_lookup

    return dataset_lookup(_dataset)


def lookup_of(dataset):
    """The PatchLookup (patches by id) of an open dataset, built once per dataset content."""
    return _lookup(dataset_key(dataset), dataset)


# --------------------------------------------------------------------------- features


@st.cache_resource(show_spinner="Reading the cached features…", max_entries=4)
def _features(key: FileKey):
    from core.diagnose.features import read_features

    return read_features(key.path)


def features_at(path: str | Path):
    """The features stored in the cache file at `path`, read once per file version."""
    return _features(file_key(path))


@st.cache_resource(show_spinner="Indexing the features…", max_entries=4)
def _index(key: FileKey):
    from core.diagnose.neighbours import NeighbourIndex

    return NeighbourIndex(_features(key))


def index_at(path: str | Path):
    """The nearest-neighbour index over the features at `path`, built once per file version."""
    return _index(file_key(path))
