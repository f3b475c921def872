"""Region: a tumour-probability heatmap over a region image or a whole slide.

Choose an image inside the data roots (or upload one), set its resolution when the file does not
carry it, and compute the heatmap: it runs as a background job in its own process
(core.region.jobs), found again by its key after a reload or from a second session, and stoppable.
The finished map is drawn over the thumbnail in plotly (pan, zoom; opacity, colormap, threshold
contour); a click on a tile (or its row and column) shows the patch the model saw, its probability,
its quality flags and its Grad-CAM. The job runs at the default threshold; everything that depends
on the threshold (contour, tumour area) is recomputed here from the stored probabilities.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.constants import DEFAULT_THRESHOLD, IMAGE_SIZE, PCAM_MPP
from core.data.quality import FLAG_BADGES, FLAG_MEANINGS
from core.errors import PatchLensError
from core.evaluate.heatmaps import COLORMAPS, DEFAULT_COLORMAP
from core.files import atomic_write_bytes
from core.region.jobs import LOADING_PHASE, SCORING_PHASE, launch, output_dir, read_job, stop_job
from core.region.outputs import OUTPUT_FILES, cell_map, flags_of, read_outputs, tumour_area_mm2
from core.region.reader import REGION_EXTENSIONS, open_region_image
from core.region.tiling import DEFAULT_STRIDE, STRIDES, Grid, read_band, read_level
from core.settings import check_allowed, workspace_dir
from ui.frame import page
from ui.gallery import blend, explain_settings, explanation, method_name
from ui.prediction_source import threshold_control
from ui.shared import extra_roots, job_progress_bar, model_label, required_model_path
from ui.text import md_escape

SOURCE_KEY = "region_source"
PATH_KEY = "region_path"
UPLOAD_KEY = "region_upload"
MPP_KEY = "region_mpp"
STRIDE_KEY = "region_stride"
ROW_KEY, COL_KEY = "region_row", "region_col"
MAP_KEY = "region_map"
CLICK_KEY = "region_clicked"  # the last click on the map that was followed
SOURCES = {"path": "A file in the data roots", "upload": "Upload a file"}
JOB_REFRESH_SECONDS = 1.0
MAX_CLICKABLE_TILES = 20_000  # tile centres drawn as (invisible) click targets
CONTOUR_POINTS = 400_000  # the contour is traced on the cells repeated up to 8x8, within this many points
PLOTLY_SCALES = {"jet": "Jet", "inferno": "Inferno", "viridis": "Viridis"}


def uploaded_path(upload) -> Path:
    """Save an upload once under <workspace>/uploads/region/<content hash>/ (a data root)."""
    data = upload.getvalue()
    folder = workspace_dir() / "uploads" / "region" / hashlib.sha256(data).hexdigest()[:16]
    path = folder / Path(upload.name).name
    if not path.is_file():
        atomic_write_bytes(path, data)
    return path


def chosen_image() -> Path | None:
    """The image the user chose (checked against the data roots), or None after saying why not."""
    source = st.radio("Image", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=SOURCE_KEY)
    if source == "upload":
        upload = st.file_uploader(
            "A region image or slide", type=[e.lstrip(".") for e in REGION_EXTENSIONS], key=UPLOAD_KEY
        )
        return uploaded_path(upload) if upload is not None else None
    text = st.text_input(
        "Path of a region image or slide",
        key=PATH_KEY,
        placeholder="/data/slides/case-17.svs",
        help="PNG/JPEG, TIFF (tiled, pyramidal, OME-TIFF) or a slide OpenSlide reads (.svs, .ndpi, .mrxs, …); "
        "only files inside the data roots.",
    )
    if not text.strip():
        return None
    try:
        return check_allowed(text, extra_roots())
    except PatchLensError as error:
        st.error(md_escape(error))
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def image_info(path: str, mtime: float) -> dict:
    with open_region_image(path) as image:
        return {"width": image.width, "height": image.height, "mpp": image.mpp, "reader": image.backend,
                "levels": len(image.level_sizes)}  # fmt: skip


def _mtime(path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def resolution(info: dict) -> float | None:
    """The image's µm/px: the file's, or what the user enters when the file carries none."""
    if info["mpp"] is not None:
        st.caption(f"Resolution from the file: {info['mpp']:.4g} µm/px.")
        return info["mpp"]
    st.warning("This file does not say how many µm a pixel is: enter its resolution to score it.")
    return st.number_input("µm per pixel", min_value=0.05, max_value=50.0, value=None, step=0.01,
                           format="%.4f", key=MPP_KEY, help=f"The model sees {PCAM_MPP} µm/px (PCam, 10×).")  # fmt: skip


# --------------------------------------------------------------------------- the job


def job_panel(key: str | None, model_path: str, image: Path, stride: int, mpp: float) -> dict | None:
    """Start, follow or report the heatmap job; returns its outputs once finished."""
    job = read_job(key) if key else None
    if job and job["state"] in ("queued", "running"):
        job_progress(key)
        return None
    if job and job["state"] == "finished":
        outputs = read_outputs(output_dir(key))
        if outputs is not None:
            return outputs
    if job and job["state"] == "failed":
        st.error(f"The heatmap failed: {md_escape(job.get('error') or 'no reason given')}")
    elif job and job["state"] == "stopped":
        st.info("The heatmap was stopped before it finished.")
    else:
        st.info("Not computed yet: the model scores every tissue tile in the background; you may reload "
                "the page or come back later.")  # fmt: skip
    if st.button("Compute the heatmap", type="primary", key="region_start"):
        try:
            launch(model_path, image, stride=stride, mpp=mpp, threshold=DEFAULT_THRESHOLD)
        except (PatchLensError, OSError) as error:
            st.error(f"The heatmap could not be started: {md_escape(error)}")
            return None
        st.rerun()
    return None


@st.fragment(run_every=JOB_REFRESH_SECONDS)
def job_progress(key: str) -> None:
    """The running job's progress (tiles, tiles/s, ETA), refreshed every second; Stop."""
    job_progress_bar(read_job(key) or {}, scoring_text, stop=lambda: stop_job(key), key="region_stop")


def scoring_text(job: dict, done: int, total: int) -> str:
    if job.get("phase") != SCORING_PHASE or not total:
        return job.get("phase") or LOADING_PHASE
    eta = job.get("eta_s")
    return f"Scoring tiles… {done:,}/{total:,} · {job.get('patches_per_s') or 0:.0f} tiles/s" + (
        f" · ETA {eta:.0f} s" if eta is not None else ""
    )


# --------------------------------------------------------------------------- the map


def grid_of(summary: dict) -> Grid:
    return Grid(summary["width"], summary["height"], summary["mpp"], summary["model_mpp"], summary["stride"])


def map_figure(thumb, cells, grid: Grid, probabilities, summary, threshold, view: dict) -> go.Figure:
    """Thumbnail + averaged map + threshold contour in level-0 pixel coordinates, with click targets."""
    per_thumb = 1.0 / summary["thumbnail_scale"]
    cell = grid.stride / grid.scale
    figure = go.Figure(go.Image(z=thumb, x0=per_thumb / 2, dx=per_thumb, y0=per_thumb / 2, dy=per_thumb,
                                hoverinfo="skip"))  # fmt: skip
    placed = dict(x0=cell / 2, dx=cell, y0=cell / 2, dy=cell)
    figure.add_trace(go.Heatmap(z=cells, **placed, zmin=0, zmax=1, colorscale=PLOTLY_SCALES[view["colormap"]],
                                opacity=view["opacity"], hoverinfo="skip", colorbar=dict(title="P(tumour)")))  # fmt: skip
    if view["contour"]:  # on a finer copy of the cells, so the line follows their edges
        fine = max(1, min(8, int(np.sqrt(CONTOUR_POINTS / max(cells.size, 1)))))
        sharp = np.kron(np.nan_to_num(cells, nan=0.0), np.ones((fine, fine), dtype=np.float32))
        step = cell / fine
        figure.add_trace(go.Contour(z=sharp, x0=step / 2, dx=step, y0=step / 2, dy=step, showscale=False, hoverinfo="skip",
                                    contours=dict(start=threshold, end=threshold, coloring="none"),
                                    line=dict(color="white", width=2), name="threshold", showlegend=False))  # fmt: skip
    rows, cols = np.nonzero(~np.isnan(probabilities))
    if 0 < len(rows) <= MAX_CLICKABLE_TILES:
        x, y, size, _ = grid.tile_box(rows, cols)
        figure.add_trace(go.Scatter(
            x=x + size / 2, y=y + size / 2, mode="markers", customdata=np.stack([rows, cols], axis=1),
            text=[f"{p:.3f}" for p in probabilities[rows, cols]], marker=dict(size=8, opacity=0.01),
            selected=dict(marker=dict(opacity=0.01)), unselected=dict(marker=dict(opacity=0.01)),
            hovertemplate="tile (%{customdata[0]}, %{customdata[1]})<br>P(tumour) %{text}<extra></extra>",
            showlegend=False,
        ))  # fmt: skip
    figure.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False, title="y (level-0 px)")
    figure.update_xaxes(showgrid=False, title="x (level-0 px)")
    figure.update_layout(
        height=620, margin=dict(t=10, b=10, l=10, r=10), clickmode="event+select", dragmode="pan"
    )
    return figure


def clicked_tile(points: list[dict], probabilities: np.ndarray) -> tuple[int, int] | None:
    """The tile of the last clicked click target: only the targets carry customdata, and their
    point index runs over the scored tiles in np.nonzero order (as drawn by map_figure)."""
    rows, cols = np.nonzero(~np.isnan(probabilities))
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


@st.cache_data(show_spinner="Reading the tile…", max_entries=64)
def tile_pixels(path: str, mtime: float, summary_key: tuple, row: int, col: int, mpp: float, model_mpp: float,
                stride: int) -> np.ndarray:  # fmt: skip
    """The 96x96 patch the model saw at tile (row, col), read from the image again."""
    with open_region_image(path) as image:
        grid = Grid(image.width, image.height, mpp, model_mpp, stride)
        return read_band(image, grid, read_level(image, grid), row, col, col + 1)


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
        st.info("This tile was not scored: the tissue mask found (almost) no tissue there.")
        return
    try:
        patch = tile_pixels(str(image), _mtime(image), (summary["seconds"],), int(row), int(col), summary["mpp"],
                            summary["model_mpp"], summary["stride"])  # fmt: skip
    except PatchLensError as error:
        st.error(f"The tile could not be read: {md_escape(error)}")
        return
    flags = flags_of(int(quality[row, col]))
    st.markdown(f"**P(tumour) {probability:.4f}** · call at {threshold:.3f}: "
                + ("not meaningful (flagged)" if flags else ("tumour" if probability >= threshold else "normal")))  # fmt: skip
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
    columns = st.columns(len(OUTPUT_FILES))
    for column, name in zip(columns, OUTPUT_FILES, strict=True):
        path = folder / name
        if path.is_file():
            column.download_button(
                name, data=path.read_bytes(), file_name=name, key=f"region_download_{name}"
            )


def results(key: str, image: Path, model_path: str, outputs: dict) -> None:
    summary, probabilities, quality = outputs["summary"], outputs["probabilities"], outputs["quality"]
    grid = grid_of(summary)
    threshold = threshold_control()
    cells = cell_map(probabilities, quality, grid)
    cards = st.columns(5)
    cards[0].metric(
        "Tiles scored", f"{summary['n_scored']:,}", help=f"of {summary['n_tiles']:,}; the rest is glass"
    )
    cards[1].metric("Flagged", f"{summary['n_flagged']:,}", help="left out of the map and the area")
    cards[2].metric(
        "Tumour area", f"{tumour_area_mm2(cells, grid, threshold):.3f} mm²", help=f"at {threshold:.3f}"
    )
    cards[3].metric("Seconds", f"{summary['seconds']:.1f}")
    cards[4].metric("Tiles/s", f"{summary.get('tiles_per_s') or 0:.0f}")
    view_columns = st.columns(3)
    view = {
        "opacity": view_columns[0].slider("Map opacity", 0.0, 1.0, 0.5, 0.05, key="region_opacity"),
        "colormap": view_columns[1].selectbox(
            "Colormap", COLORMAPS, index=COLORMAPS.index(DEFAULT_COLORMAP), key="region_colormap"
        ),  # fmt: skip
        "contour": view_columns[2].toggle("Threshold contour", True, key="region_contour"),
    }
    from PIL import Image

    thumb = np.asarray(Image.open(output_dir(key) / "thumbnail.png").convert("RGB"))
    follow_click(probabilities)
    st.plotly_chart(map_figure(thumb, cells, grid, probabilities, summary, threshold, view), key=MAP_KEY,
                    on_select="rerun", selection_mode="points", width="stretch")  # fmt: skip
    st.caption("Click a tile (or set its row and column below) to see it. Drag to pan, scroll to zoom.")
    downloads(key)
    tile_panel(image, model_path, outputs, grid, threshold)


with page("Region"):
    model_path = required_model_path()
    st.caption(
        f"Model: {md_escape(model_label(model_path))} — scores 96 px tiles at {PCAM_MPP} µm/px over the tissue."
    )
    image_path = chosen_image()
    if image_path is None:
        st.info("Choose a region image or a whole slide: the model scores every tissue tile into a heatmap.")
        st.stop()
    try:
        info = image_info(str(image_path), _mtime(image_path))
    except PatchLensError as error:
        st.error(md_escape(error))
        st.stop()
    st.caption(f"{md_escape(image_path.name)}: {info['width']:,} × {info['height']:,} px, {info['levels']} level(s), "
               f"read with {info['reader']}.")  # fmt: skip
    mpp = resolution(info)
    stride = st.selectbox("Stride (px at the model's resolution)", STRIDES, index=STRIDES.index(DEFAULT_STRIDE),
                          key=STRIDE_KEY, help="96 = tiles side by side; 48 or 32 overlap and average (4× or 9× the work).")  # fmt: skip
    if mpp is None:
        st.stop()
    from core.region.jobs import job_key  # noqa: E402 - after the inputs it needs

    try:
        job = job_key(model_path, image_path, stride=stride, mpp=float(mpp), threshold=DEFAULT_THRESHOLD)
    except PatchLensError as error:
        st.error(md_escape(error))
        st.stop()
    outputs = job_panel(job, model_path, image_path, stride, float(mpp))
    if outputs is not None:
        results(job, image_path, model_path, outputs)
