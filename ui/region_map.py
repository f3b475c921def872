"""The Region page's map: the thumbnail with the averaged probability map, the threshold contour and a
click target per tile (plotly, in level-0 pixel coordinates), and the click that picks a tile.

Session state keys:
  region_map       the chart (its selection holds the last click)
  region_clicked   the last click on the map that was followed
  region_row, region_col   the tile shown below the map
  region_layer     the overlay shown: P(tumour), or the spread of the 8 views when the run kept it
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.evaluate.uncertainty import UNCERTAIN_SPREAD
from core.region.outputs import cell_map
from core.region.tiling import Grid

ROW_KEY, COL_KEY = "region_row", "region_col"
MAP_KEY = "region_map"
CLICK_KEY = "region_clicked"  # the last click on the map that was followed
MAX_CLICKABLE_TILES = 20_000  # tile centres drawn as (invisible) click targets
SELECTED_COLOUR = "#00e5ff"  # the outline of the selected tile on the map
CONTOUR_POINTS = 400_000  # the contour is traced on the cells repeated up to 8x8, within this many points
PLOTLY_SCALES = {"jet": "Jet", "inferno": "Inferno", "viridis": "Viridis"}
LAYER_KEY = "region_layer"
PROBABILITY_LAYER, SPREAD_LAYER = "P(tumour)", "Spread of the 8 views"
SPREAD_SCALE_MAX = 4 * UNCERTAIN_SPREAD  # the spread layer's colour range: 0 to this (the cut a quarter up)


def layer_choice(
    outputs: dict, cells: np.ndarray, grid: Grid, threshold: float
) -> tuple[np.ndarray, float, dict]:
    """The overlay to draw: (its cells, the value its contour marks, {layer, top of its colour range}).
    P(tumour) with the threshold's contour, unless the run kept the spread of the 8 views
    (`--uncertainty`): then a choice, the spread's cells contoured at UNCERTAIN_SPREAD."""
    probability = (cells, threshold, {"layer": PROBABILITY_LAYER, "top": 1.0})
    if outputs.get("spread") is None:
        return probability
    layer = st.radio("Overlay", (PROBABILITY_LAYER, SPREAD_LAYER), horizontal=True, key=LAYER_KEY,
                     help=f"The spread of each tile's 8 flipped/rotated views; at or above {UNCERTAIN_SPREAD:g} "
                     "the model is uncertain (the contour).")  # fmt: skip
    if layer == PROBABILITY_LAYER:
        return probability
    spread_cells = cell_map(outputs["spread"], outputs["quality"], grid)
    return spread_cells, UNCERTAIN_SPREAD, {"layer": SPREAD_LAYER, "top": SPREAD_SCALE_MAX}


def grid_of(summary: dict) -> Grid:
    return Grid(summary["width"], summary["height"], summary["mpp"], summary["model_mpp"], summary["stride"])


def map_figure(
    thumb, cells, grid: Grid, probabilities, summary, threshold, view: dict, selected=None
) -> go.Figure:
    """Thumbnail + averaged map + threshold contour in level-0 pixel coordinates, with click targets
    and the `selected` (row, col) tile outlined."""
    per_thumb = 1.0 / summary["thumbnail_scale"]
    cell = grid.stride / grid.scale
    figure = go.Figure(go.Image(z=thumb, x0=per_thumb / 2, dx=per_thumb, y0=per_thumb / 2, dy=per_thumb,
                                hoverinfo="skip"))  # fmt: skip
    placed = dict(x0=cell / 2, dx=cell, y0=cell / 2, dy=cell)
    layer, top = view.get("layer", PROBABILITY_LAYER), view.get("top", 1.0)
    figure.add_trace(go.Heatmap(z=cells, **placed, zmin=0, zmax=top, colorscale=PLOTLY_SCALES[view["colormap"]],
                                opacity=view["opacity"], hoverinfo="skip", colorbar=dict(title=layer)))  # fmt: skip
    if view["contour"]:  # on a finer copy of the cells, so the line follows their edges
        fine = max(1, min(8, int(np.sqrt(CONTOUR_POINTS / max(cells.size, 1)))))
        sharp = np.kron(np.nan_to_num(cells, nan=0.0), np.ones((fine, fine), dtype=np.float32))
        step = cell / fine
        figure.add_trace(go.Contour(z=sharp, x0=step / 2, dx=step, y0=step / 2, dy=step, showscale=False, hoverinfo="skip",
                                    contours=dict(start=threshold, end=threshold, coloring="none"),
                                    line=dict(color="white", width=2), name="threshold", showlegend=False))  # fmt: skip
    rows, cols = click_targets(probabilities)
    if len(rows):
        x, y, size, _ = grid.tile_box(rows, cols)
        values = probabilities[rows, cols]
        figure.add_trace(go.Scatter(
            x=x + size / 2, y=y + size / 2, mode="markers", customdata=np.stack([rows, cols], axis=1),
            text=["not scored" if np.isnan(p) else f"{p:.3f}" for p in values], marker=dict(size=8, opacity=0.01),
            selected=dict(marker=dict(opacity=0.01)), unselected=dict(marker=dict(opacity=0.01)),
            hovertemplate="tile (%{customdata[0]}, %{customdata[1]})<br>P(tumour) %{text}<extra></extra>",
            showlegend=False,
        ))  # fmt: skip
    if selected is not None:
        x, y, size, _ = grid.tile_box(*selected)
        figure.add_shape(type="rect", x0=x, y0=y, x1=x + size, y1=y + size, name="selected tile",
                         line=dict(color=SELECTED_COLOUR, width=3))  # fmt: skip
    figure.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False, title="y (level-0 px)")
    figure.update_xaxes(showgrid=False, title="x (level-0 px)")
    figure.update_layout(
        height=620, margin=dict(t=10, b=10, l=10, r=10), clickmode="event+select", dragmode="pan"
    )
    return figure


def click_targets(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the tiles drawn as click targets, row by row: every tile, so a click on glass
    says so; only the scored ones on a grid too large; none when even those are too many."""
    every = np.ones(probabilities.shape, dtype=bool)
    for wanted in (every, ~np.isnan(probabilities)):
        if wanted.sum() <= MAX_CLICKABLE_TILES:
            return np.nonzero(wanted)
    return np.empty(0, dtype=int), np.empty(0, dtype=int)


def clicked_tile(points: list[dict], probabilities: np.ndarray) -> tuple[int, int] | None:
    """The tile of the last clicked click target: only the targets carry customdata, and their
    point index runs over click_targets (as drawn by map_figure)."""
    rows, cols = click_targets(probabilities)
    tile = None
    for point in points:
        index = point.get("point_index", point.get("point_number"))
        if point.get("customdata") is not None and index is not None and 0 <= int(index) < len(rows):
            tile = (int(rows[int(index)]), int(cols[int(index)]))
    return tile


def follow_click(probabilities: np.ndarray) -> None:
    """A new click on a tile sets the row and column inputs (drawn after the chart). A click stays
    in the chart's selection on later reruns, so only a change is followed."""
    points = ((st.session_state.get(MAP_KEY) or {}).get("selection") or {}).get("points") or []
    tile = clicked_tile(points, probabilities)
    if tile is not None and tile != st.session_state.get(CLICK_KEY):
        st.session_state[ROW_KEY], st.session_state[COL_KEY] = tile
    st.session_state[CLICK_KEY] = tile
