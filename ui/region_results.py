"""The Region page's finished heatmap: the cards (tiles scored, flagged, tumour area at the threshold),
the map (ui.region_map), the downloads, and one tile in detail with its quality flags and Grad-CAM.
Everything that depends on the threshold is recomputed here from the stored probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core.constants import IMAGE_SIZE
from core.data.quality import FLAG_BADGES, FLAG_MEANINGS, quality_label, withholds
from core.evaluate.heatmaps import COLORMAPS, DEFAULT_COLORMAP
from core.region.jobs import output_dir
from core.region.outputs import OUTPUT_FILES, cell_map, flags_of, tumour_area_mm2
from core.region.reader import open_region_image
from core.region.tiling import Grid, read_band, read_level
from ui.boundary import error_boundary
from ui.cache import FileKey, file_key
from ui.gallery import blend, explain_settings, explanation, method_name
from ui.region_map import (
    COL_KEY,
    MAP_KEY,
    ROW_KEY,
    follow_click,
    grid_of,
    layer_choice,
    map_figure,
)
from ui.threshold import threshold_control


@st.cache_data(show_spinner="Reading the tile…", max_entries=64)
def tile_pixels(image: FileKey, summary_key: tuple, row: int, col: int, mpp: float, model_mpp: float,
                stride: int) -> np.ndarray:  # fmt: skip
    """The 96x96 patch the model saw at tile (row, col), read from the image again."""
    with open_region_image(image.path) as region:
        grid = Grid(region.width, region.height, mpp, model_mpp, stride)
        return read_band(region, grid, read_level(region, grid), row, col, col + 1)


def tile_panel(image: Path, model_path: str, outputs: dict, grid: Grid, threshold: float) -> None:
    probabilities, quality, summary = outputs["probabilities"], outputs["quality"], outputs["summary"]
    rows, cols = probabilities.shape
    st.subheader("One tile")
    left, right = st.columns(2)
    row = left.number_input("Row", 0, rows - 1, key=ROW_KEY)
    col = right.number_input("Column", 0, cols - 1, key=COL_KEY)
    probability = float(probabilities[row, col])
    x, y, size, _ = grid.tile_box(row, col)
    st.caption(f"Tile ({row}, {col}): level-0 pixels x {x:.0f}–{x + size:.0f}, y {y:.0f}–{y + size:.0f}.")
    if np.isnan(probability):
        st.info(
            "This tile was not scored (glass/background): the tissue mask found (almost) no tissue there."
        )
        return
    with error_boundary("The tile could not be read") as outcome:
        patch = tile_pixels(file_key(image), (summary["seconds"],), int(row), int(col), summary["mpp"],
                            summary["model_mpp"], summary["stride"])  # fmt: skip
    if outcome.failed:
        return
    flags = flags_of(int(quality[row, col]))
    st.markdown(f"**P(tumour) {probability:.4f}** · call at {threshold:.3f}: "
                + ("not meaningful (flagged)" if withholds(quality_label(flags)) else ("tumour" if probability >= threshold else "normal")))  # fmt: skip
    for flag in flags:
        st.badge(FLAG_BADGES[flag], icon="⚠️", color="orange", help=FLAG_MEANINGS[flag])
    settings = explain_settings("region")
    result = explanation(
        model_path, patch[None], [f"{image}:{row}:{col}:{summary['seconds']}"], settings, threshold
    )
    original, explained = st.columns(2)
    original.image(patch, caption=f"the patch the model saw ({IMAGE_SIZE} px at {summary['model_mpp']} µm/px)",
                   width="stretch")  # fmt: skip
    if result is not None:
        explained.image(blend(patch, result.heatmaps[0], settings), caption=method_name(settings["method"]),
                        width="stretch")  # fmt: skip


def downloads(key: str) -> None:
    folder = output_dir(key)
    columns = st.columns(3)  # six in a row clipped their names ("probabilit…") at 1,024 px
    for index, name in enumerate(OUTPUT_FILES):
        path = folder / name
        if path.is_file():
            columns[index % 3].download_button(
                name, data=path.read_bytes(), file_name=name, key=f"region_download_{name}"
            )


def results(key: str, image: Path, model_path: str, outputs: dict) -> None:
    summary, probabilities, quality = outputs["summary"], outputs["probabilities"], outputs["quality"]
    grid = grid_of(summary)
    threshold = threshold_control()
    cells = cell_map(probabilities, quality, grid)
    cards = st.columns([1, 1, 2])  # five cards clipped the area ("13.235 m…"): three, the area's wide
    cards[0].metric(
        "Tiles scored", f"{summary['n_scored']:,}", help=f"of {summary['n_tiles']:,}; the rest is glass"
    )
    cards[1].metric("Flagged", f"{summary['n_flagged']:,}", help="left out of the map and the area")
    cards[2].metric(
        "Tumour area", f"{tumour_area_mm2(cells, grid, threshold):,.3f} mm²", help=f"at {threshold:.3f}"
    )
    st.caption(f"Scored in {summary['seconds']:,.1f} s ({summary.get('tiles_per_s') or 0:,.0f} tiles/s).")
    view_columns = st.columns(3)
    view = {
        "opacity": view_columns[0].slider("Map opacity", 0.0, 1.0, 0.5, 0.05, key="region_opacity"),
        "colormap": view_columns[1].selectbox(
            "Colormap", COLORMAPS, index=COLORMAPS.index(DEFAULT_COLORMAP), key="region_colormap"
        ),  # fmt: skip
        "contour": view_columns[2].toggle("Threshold contour", True, key="region_contour"),
    }
    shown, line, layer = layer_choice(outputs, cells, grid, threshold)
    view.update(layer)
    from PIL import Image

    thumb = np.asarray(Image.open(output_dir(key) / "thumbnail.png").convert("RGB"))
    follow_click(probabilities)
    selected = (st.session_state.get(ROW_KEY), st.session_state.get(COL_KEY))
    selected = selected if None not in selected else None
    st.plotly_chart(map_figure(thumb, shown, grid, probabilities, summary, line, view, selected), key=MAP_KEY,
                    on_select="rerun", selection_mode="points", width="stretch")  # fmt: skip
    st.caption("Click a tile (or set its row and column below) to see it. Drag to pan, scroll to zoom.")
    downloads(key)
    tile_panel(image, model_path, outputs, grid, threshold)
