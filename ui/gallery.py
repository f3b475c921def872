"""Patch grids and Grad-CAM for the Predict, Mistakes and Label issues pages.

The Explainer (core.evaluate.explain) is built once per model file and shared by every session through
st.cache_resource (it is thread-safe); explanations are cached per (model, method, target, scale,
patches), so changing the opacity, colormap or centre box only re-blends, never re-explains. Every
gallery of heatmaps gets one colour bar with a caption that says how its maps are scaled.
`paged_gallery`, `pick_one` and `patch_in_detail` draw the ranked, paged gallery of Mistakes and Label
issues and its one patch in detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core.data.images import draw_centre_box
from core.evaluate.explain import DEFAULT_SCALE, METHODS, SCALES, TARGETS, Explanation
from core.evaluate.heatmaps import (
    COLORMAPS,
    DEFAULT_ALPHA,
    describe_scale,
    labelled_colour_bar,
    overlay,
    scale_labels,
)
from core.formatting import page_bounds
from ui.boundary import error_boundary
from ui.cache import FileKey, model_key
from ui.cache import explainer_at as cached_explainer
from ui.shared import from_url, page_in, to_url
from ui.text import md_code, md_escape

GRID_COLUMNS = 6
GALLERY_PAGE_SIZE = 24  # patches per page of a ranked gallery
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
DETAIL_SETTINGS = {
    "method": "gradcam",
    "target": "tumour",
    "alpha": DEFAULT_ALPHA,
    "colormap": "jet",
    "box": True,
}


def explainer_at(path: str):
    """The cached Explainer of the model at `path`, or None after saying why there is none."""
    with error_boundary("Grad-CAM is unavailable for this model", also=(OSError,)):
        return cached_explainer(path)
    return None


@st.cache_data(
    show_spinner="Computing heatmaps… (a method's first maps also measure its shared scale)", max_entries=64
)
def _explanation(
    model: FileKey,
    method: str,
    target: str,
    threshold: float | None,
    scale: str,
    keys: tuple,
    _patches,
) -> Explanation:
    explainer = cached_explainer(model.path)
    return explainer.explain(_patches, method, target, threshold=threshold, scale=scale)


def explanation(
    model_path: str, patches: np.ndarray, keys: Sequence[str], settings: dict, threshold: float
) -> Explanation | None:
    """The Explanation (display maps, raw strengths, scale) of non-empty `patches` (identified by
    `keys`), or None after an error."""
    if explainer_at(model_path) is None:
        return None
    with error_boundary("The heatmaps could not be computed"):
        used_threshold = threshold if settings["target"] == "predicted" else None
        scale = settings.get("scale", DEFAULT_SCALE)
        return _explanation(
            model_key(model_path),
            settings["method"],
            settings["target"],
            used_threshold,
            scale,
            tuple(keys),
            patches,
        )
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


def explain_settings(key: str) -> dict:
    """Method, target, display scale, opacity, colormap and centre box, in two rows of three controls
    (in one row of six, 'the tumour score' and 'Centre box' were cut at 1,280 px)."""
    row = [*st.columns(3), *st.columns(3)]
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


@dataclass
class Gallery:
    """The page of a ranked gallery on screen: its readable patches, their ids and table rows."""

    patches: np.ndarray
    ids: list[str]
    rows: pd.DataFrame  # the table's rows of `ids`, indexed by id
    settings: dict  # the Grad-CAM controls' (only "box" when Grad-CAM is off)
    explain: bool  # Grad-CAM on for the whole page
    model_path: str | None
    threshold: float
    key: str


def paged_gallery(
    table: pd.DataFrame,
    *,
    key: str,
    noun: str,
    order: str,
    lookup,
    model_path: str | None,
    threshold: float,
    caption: Callable[[tuple], str],
    unexplained: str,
) -> Gallery:
    """One page of `table` (ranked, with an `id` column) as a grid of patches captioned by `caption(row)`,
    with a page number and a Grad-CAM toggle (`unexplained` says why it is off without a model or
    patches). Only the table is shown, and the page stops, when the patches cannot be read."""
    controls = st.columns([1, 1, 3])
    _, _, n_pages = page_bounds(len(table), 1, GALLERY_PAGE_SIZE)
    page_key = f"{key}_page"  # also the URL's parameter: a reload or a copied link keeps the page
    from_url(page_key, page_key, page_in(n_pages))
    page = controls[0].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key=page_key)
    to_url(page_key, None if page == 1 else str(int(page)))
    start, stop, _ = page_bounds(len(table), int(page), GALLERY_PAGE_SIZE)
    on_page = table.iloc[start:stop]
    can_explain = model_path is not None and lookup is not None
    explain = controls[1].toggle(
        "Grad-CAM", False, key=f"{key}_explain", disabled=not can_explain,
        help="Heatmaps for the patches of this page only." if can_explain else unexplained,
    )  # fmt: skip
    settings = explain_settings(key) if explain else {"box": True}
    st.caption(f"{noun} {start + 1:,}–{stop:,} of {len(table):,}, {order}.")
    if lookup is None:
        st.dataframe(on_page, hide_index=True, width="stretch")
        st.stop()
    patches, shown, missing = lookup.read(on_page["id"].tolist())
    rows = on_page.set_index("id").loc[shown]
    maps = heatmaps(model_path, patches, shown, settings, threshold) if explain else None
    images = [
        blend(patch, maps[k], settings) if maps is not None else with_box(patch, settings["box"])
        for k, patch in enumerate(patches)
    ]
    patch_grid(images, [caption(row) for row in rows.itertuples()])
    if missing:
        st.caption(
            f"{len(missing)} patch(es) could not be read: " + md_escape("; ".join(list(missing.values())[:3]))
        )
    return Gallery(patches, shown, rows, settings, explain, model_path, threshold, key)


def pick_one(gallery: Gallery, noun: str, describe: Callable[[str], str]) -> str:
    """The heading "One <noun> in detail" and a select box over the gallery's patches, each named by
    `describe(id)`; the page stops when the gallery shows none."""
    st.subheader(f"One {noun.lower()} in detail")
    if not gallery.ids:
        st.stop()
    return st.selectbox(noun, gallery.ids, format_func=describe, key=f"{gallery.key}_detail")


CODE_DETAILS = ("id", "source")  # shown as inline code, whatever characters they hold


def _detail(name: str, value: str) -> str:
    return md_code(value) if name in CODE_DETAILS else md_escape(value)


def patch_in_detail(gallery: Gallery, chosen: str, details: dict[str, str]) -> None:
    """Patch `chosen` of the gallery with its centre box, its Grad-CAM (at once when the page shows
    heatmaps, else on a button) and `details` ({name: value}) beside them."""
    k = gallery.ids.index(chosen)
    patch = gallery.patches[k]
    left, middle, right = st.columns(3)
    left.image(with_box(patch, True), caption="patch (centre 32×32 px outlined)", width="stretch")
    button_key = f"{gallery.key}_detail_explain"
    if gallery.model_path is not None and (
        gallery.explain or middle.button("Grad-CAM for this one", key=button_key)
    ):
        settings = gallery.settings if gallery.explain else DETAIL_SETTINGS
        detail = heatmaps(
            gallery.model_path, gallery.patches[k : k + 1], [chosen], settings, gallery.threshold
        )
        if detail is not None:
            middle.image(blend(patch, detail[0], settings), caption=settings["method"], width="stretch")
    right.markdown("  \n".join(f"**{name}** {_detail(name, value)}" for name, value in details.items()))
