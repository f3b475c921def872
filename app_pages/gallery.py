"""Patch grids and Grad-CAM for the Predict and Mistakes pages.

The Explainer (core.explain) is built once per model file and shared by every session through
st.cache_resource (it is thread-safe); heatmaps are cached per (model, method, target, patches),
so changing the opacity, colormap or centre box only re-blends, never re-explains.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import streamlit as st

from app_pages.shared import load_model_cached
from core.errors import PatchLensError
from core.explain import COLORMAPS, DEFAULT_ALPHA, METHODS, TARGETS, overlay
from core.images import draw_centre_box

GRID_COLUMNS = 6
METHOD_NAMES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM (slow)",
    "saliency": "SmoothGrad saliency",
}


def _model_file(path: str) -> tuple[str, float]:
    from core.models import resolve_model_path

    resolved = str(resolve_model_path(path))
    return resolved, os.stat(resolved).st_mtime


def load_model_at(path: str):
    """A model through the same process-wide cache as the sidebar's model; None after an error."""
    try:
        return load_model_cached(*_model_file(path))
    except (PatchLensError, OSError) as error:
        st.error(str(error))
        return None


@st.cache_resource(show_spinner="Preparing the explainer…", max_entries=4)
def _explainer(resolved: str, mtime: float):
    from core.explain import Explainer

    return Explainer(load_model_cached(resolved, mtime))


def explainer_at(path: str):
    try:
        return _explainer(*_model_file(path))
    except (PatchLensError, OSError) as error:
        st.error(f"Grad-CAM is unavailable for this model: {error}")
        return None


@st.cache_data(show_spinner="Computing heatmaps…", max_entries=64)
def _heatmaps(
    resolved: str, mtime: float, method: str, target: str, threshold: float | None, keys: tuple, _patches
) -> np.ndarray:
    explanation = _explainer(resolved, mtime).explain(_patches, method, target, threshold=threshold)
    return explanation.heatmaps


def heatmaps(model_path: str, patches: np.ndarray, keys: Sequence[str], settings: dict, threshold: float):
    """Heatmaps (n, 96, 96) for `patches` (identified by `keys`), or None after an error."""
    if len(patches) == 0:
        return np.zeros((0, 96, 96), dtype=np.float32)
    try:
        resolved, mtime = _model_file(model_path)
        explainer_at(model_path)
        used_threshold = threshold if settings["target"] == "predicted" else None
        return _heatmaps(
            resolved, mtime, settings["method"], settings["target"], used_threshold, tuple(keys), patches
        )
    except (PatchLensError, ValueError) as error:
        st.error(f"The heatmaps could not be computed: {error}")
        return None


def explain_settings(key: str, *, columns: int = 5) -> dict:
    """Method, target, opacity, colormap and centre box, in one row of controls."""
    row = st.columns(columns)
    return {
        "method": row[0].selectbox("Method", METHODS, format_func=METHOD_NAMES.get, key=f"{key}-method"),
        "target": row[1].selectbox(
            "Explain",
            TARGETS,
            format_func={"tumour": "the tumour score", "predicted": "the predicted class"}.get,
            key=f"{key}-target",
        ),
        "alpha": row[2].slider("Heatmap opacity", 0.0, 1.0, DEFAULT_ALPHA, 0.05, key=f"{key}-alpha"),
        "colormap": row[3].selectbox("Colormap", COLORMAPS, key=f"{key}-colormap"),
        "box": row[4].toggle(
            "Centre box", True, key=f"{key}-box", help="The label refers to the centre 32×32 px."
        ),
    }


def blend(patch: np.ndarray, heatmap: np.ndarray, settings: dict) -> np.ndarray:
    return overlay(
        patch, heatmap, colormap=settings["colormap"], alpha=settings["alpha"], draw_box=settings["box"]
    )


def with_box(patch: np.ndarray, box: bool) -> np.ndarray:
    return draw_centre_box(patch) if box else patch


def patch_grid(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = GRID_COLUMNS) -> None:
    """Images in rows of `columns`, each with its caption."""
    for start in range(0, len(images), columns):
        row = st.columns(columns)
        for column, image, caption in zip(
            row, images[start : start + columns], captions[start : start + columns], strict=False
        ):
            column.image(image, caption=caption, width="stretch")
