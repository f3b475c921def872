"""Patch grids and Grad-CAM for the Predict and Mistakes pages.

The Explainer (core.evaluate.explain) is built once per model file and shared by every session through
st.cache_resource (it is thread-safe); explanations are cached per (model, method, target, scale,
patches), so changing the opacity, colormap or centre box only re-blends, never re-explains. Every
gallery of heatmaps gets one colour bar with a caption that says how its maps are scaled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import streamlit as st

from core.data.images import draw_centre_box
from core.errors import PatchLensError
from core.evaluate.explain import DEFAULT_SCALE, METHODS, SCALES, TARGETS, Explanation
from core.evaluate.heatmaps import (
    COLORMAPS,
    DEFAULT_ALPHA,
    describe_scale,
    labelled_colour_bar,
    overlay,
    scale_labels,
)
from ui.shared import load_model_cached

GRID_COLUMNS = 6
METHOD_NAMES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Score-CAM (slow)",
    "saliency": "SmoothGrad saliency",
}


def method_name(method: str) -> str:
    """The method's name for captions and sentences (without the menu's speed warning)."""
    return METHOD_NAMES[method].removesuffix(" (slow)")


SCALE_NAMES = {"shared": "shared", "own": "own max"}


def _model_file(path: str) -> tuple[str, float]:
    from core.model.io import resolve_model_path

    resolved = str(resolve_model_path(path))
    return resolved, os.stat(resolved).st_mtime


@st.cache_resource(show_spinner="Preparing the explainer…", max_entries=4)
def _explainer(resolved: str, mtime: float):
    from core.evaluate.explain import Explainer

    return Explainer(load_model_cached(resolved, mtime))


def explainer_at(path: str):
    try:
        return _explainer(*_model_file(path))
    except (PatchLensError, OSError) as error:
        st.error(f"Grad-CAM is unavailable for this model: {error}")
        return None


@st.cache_data(
    show_spinner="Computing heatmaps… (a method's first maps also measure its shared scale)", max_entries=64
)
def _explanation(
    resolved: str,
    mtime: float,
    method: str,
    target: str,
    threshold: float | None,
    scale: str,
    keys: tuple,
    _patches,
) -> Explanation:
    explainer = _explainer(resolved, mtime)
    return explainer.explain(_patches, method, target, threshold=threshold, scale=scale)


def explanation(
    model_path: str, patches: np.ndarray, keys: Sequence[str], settings: dict, threshold: float
) -> Explanation | None:
    """The Explanation (display maps, raw strengths, scale) of non-empty `patches` (identified by
    `keys`), or None after an error."""
    try:
        resolved, mtime = _model_file(model_path)
        explainer_at(model_path)
        used_threshold = threshold if settings["target"] == "predicted" else None
        scale = settings.get("scale", DEFAULT_SCALE)
        return _explanation(
            resolved,
            mtime,
            settings["method"],
            settings["target"],
            used_threshold,
            scale,
            tuple(keys),
            patches,
        )
    except PatchLensError as error:
        st.error(f"The heatmaps could not be computed: {error}")
        return None


def heatmaps(
    model_path: str,
    patches: np.ndarray,
    keys: Sequence[str],
    settings: dict,
    threshold: float,
    *,
    legend: bool = True,
):
    """Heatmaps (n, 96, 96) to draw for `patches`, or None after an error; with `legend`, the colour
    bar and caption that say how they are scaled are drawn first."""
    if len(patches) == 0:
        return np.zeros((0, 96, 96), dtype=np.float32)
    result = explanation(model_path, patches, keys, settings, threshold)
    if result is None:
        return None
    if legend:
        scale_legend(result, settings)
    return result.heatmaps


def scale_legend(result: Explanation, settings: dict) -> None:
    """The colour bar of `settings`' colormap beside the sentence that says how the maps are scaled."""
    bar, text = st.columns([1, 3])
    low, high = scale_labels(result)
    bar.image(labelled_colour_bar(settings["colormap"], low, high), width="stretch")
    text.caption(describe_scale(result, method_name(settings["method"])))


def explain_settings(key: str, *, columns: int = 6) -> dict:
    """Method, target, display scale, opacity, colormap and centre box, in one row of controls."""
    row = st.columns(columns)
    return {
        "method": row[0].selectbox("Method", METHODS, format_func=METHOD_NAMES.get, key=f"{key}-method"),
        "target": row[1].selectbox(
            "Explain",
            TARGETS,
            format_func={"tumour": "the tumour score", "predicted": "the predicted class"}.get,
            key=f"{key}-target",
        ),
        "scale": row[2].selectbox(
            "Colour scale",
            SCALES,
            index=SCALES.index(DEFAULT_SCALE),
            format_func=SCALE_NAMES.get,
            key=f"{key}-scale",
            help="Shared: every map is divided by one reference strength for this method and model, so a "
            "faint map is drawn faint. Own max: each map is stretched to its own range, so even a "
            "near-empty map is drawn red.",
        ),
        "alpha": row[3].slider("Heatmap opacity", 0.0, 1.0, DEFAULT_ALPHA, 0.05, key=f"{key}-alpha"),
        "colormap": row[4].selectbox("Colormap", COLORMAPS, key=f"{key}-colormap"),
        "box": row[5].toggle(
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
