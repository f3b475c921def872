"""Region: a tumour-probability heatmap over a region image or a whole slide.

Choose an image inside the data roots (or upload one), set its resolution when the file does not
carry it, and compute the heatmap: it runs as a background job in its own process
(core.region.jobs), found again by its key after a reload or from a second session, and stoppable.
The finished map is drawn over the thumbnail in plotly (pan, zoom; opacity, colormap, threshold
contour); a click on a tile (or its row and column) shows the patch the model saw, its probability,
its quality flags and its Grad-CAM. The job runs at the default threshold; everything that depends
on the threshold (contour, tumour area) is recomputed here from the stored probabilities.

The image, stride and resolution typed live in the URL (`region_image`, `region_stride`,
`region_mpp`), so a reload finds its job again; the running and recent jobs are listed, each with
Open. An upload is saved and checked by core.region.uploads (a refused one is not kept).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.constants import DEFAULT_THRESHOLD, IMAGE_SIZE, PCAM_MPP
from core.data.quality import FLAG_BADGES, FLAG_MEANINGS, quality_label, withholds
from core.errors import PatchLensError
from core.evaluate.heatmaps import COLORMAPS, DEFAULT_COLORMAP
from core.region.jobs import LOADING_PHASE, SCORING_PHASE, launch, list_jobs, output_dir, read_job, stop_job
from core.region.outputs import OUTPUT_FILES, cell_map, flags_of, read_outputs, tumour_area_mm2
from core.region.reader import REGION_EXTENSIONS, open_region_image, plausible_mpp
from core.region.tiling import DEFAULT_STRIDE, STRIDES, Grid, read_band, read_level
from core.region.uploads import save_upload
from core.settings import check_allowed
from ui.frame import page
from ui.gallery import blend, explain_settings, explanation, method_name
from ui.prediction_source import threshold_control
from ui.shared import (
    MODEL_KEY,
    check_offered_model,
    extra_roots,
    job_progress_bar,
    model_label,
    required_model_path,
)
from ui.text import md_escape

SOURCE_KEY = "region_source"
PATH_KEY = "region_path"
UPLOAD_KEY = "region_upload"
MPP_KEY = "region_mpp"
STRIDE_KEY = "region_stride"
ROW_KEY, COL_KEY = "region_row", "region_col"
MAP_KEY = "region_map"
CLICK_KEY = "region_clicked"  # the last click on the map that was followed
REFUSED_KEY = "region_refused"  # {upload digest: why it was refused}, so it is not saved again
URL_IMAGE, URL_STRIDE, URL_MPP = "region_image", "region_stride", "region_mpp"
ACTIVE = ("queued", "running")
SOURCES = {"path": "A file in the data roots", "upload": "Upload a file"}
JOB_REFRESH_SECONDS = 1.0
MAX_CLICKABLE_TILES = 20_000  # tile centres drawn as (invisible) click targets
SELECTED_COLOUR = "#00e5ff"  # the outline of the selected tile on the map
CONTOUR_POINTS = 400_000  # the contour is traced on the cells repeated up to 8x8, within this many points
PLOTLY_SCALES = {"jet": "Jet", "inferno": "Inferno", "viridis": "Viridis"}


def state_from_url() -> None:
    """A new session opens the image, stride and resolution its URL names (so a reload does)."""
    if PATH_KEY in st.session_state:
        return
    params = st.query_params
    if params.get(URL_IMAGE):
        st.session_state[SOURCE_KEY], st.session_state[PATH_KEY] = "path", params[URL_IMAGE]
    stride, mpp = _number(params.get(URL_STRIDE)), _number(params.get(URL_MPP))
    if stride in STRIDES:
        st.session_state[STRIDE_KEY] = int(stride)
    if plausible_mpp(mpp) is not None:
        st.session_state[MPP_KEY] = mpp


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def state_to_url(image: Path | None, stride: int | None = None, mpp: float | None = None) -> None:
    """Write the chosen image, a stride other than the default and a resolution typed by hand into
    the URL (only these keys: the others belong to the other pages)."""
    wanted = {URL_IMAGE: str(image) if image else None,
              URL_STRIDE: str(stride) if image and stride and stride != DEFAULT_STRIDE else None,
              URL_MPP: repr(float(mpp)) if image and mpp is not None else None}  # fmt: skip
    for key, value in wanted.items():
        if value is None and key in st.query_params:
            del st.query_params[key]
        elif value is not None and st.query_params.get(key) != value:
            st.query_params[key] = value


def uploaded_path(upload) -> Path | None:
    """The upload saved and checked (core.region.uploads), or None after saying why it is refused."""
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    refused = st.session_state.setdefault(REFUSED_KEY, {})
    if digest not in refused:
        in_use = {job["image"] for job in list_jobs() if job["state"] in ACTIVE}
        try:
            return save_upload(upload.name, data, in_use=in_use)
        except PatchLensError as error:
            refused[digest] = str(error)
    st.error(f"This upload is refused and was not kept: {md_escape(refused[digest])}")
    return None


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


# --------------------------------------------------------------------------- the jobs


def jobs_overview() -> None:
    """The running and recent heatmap jobs of this workspace, each with Open (its image, stride,
    resolution and model), so a job is found again after a reload or from another session."""
    jobs = list_jobs()
    if not jobs:
        return
    running = sum(job["state"] in ACTIVE for job in jobs)
    with st.expander(f"Heatmap jobs: {running} running, {len(jobs) - running} recent", expanded=running > 0):
        for job in jobs:
            name, state, action = st.columns([5, 4, 2], vertical_alignment="center")
            name.markdown(f"**{md_escape(Path(job['image']).name)}** · stride {job.get('stride', '?')} · "
                          f"{md_escape(model_label(job.get('model')))}")  # fmt: skip
            state.caption(job_state_text(job))
            action.button("Open", key=f"region_open_{job['key']}", on_click=open_job, args=(job,))


def job_state_text(job: dict) -> str:
    minutes = max(0.0, time.time() - job["updated"]) / 60
    ago = (
        "just now"
        if minutes < 1
        else f"{minutes:.0f} min ago"
        if minutes < 90
        else f"{minutes / 60:.0f} h ago"
    )
    if job["state"] in ACTIVE and not job.get("total"):
        return f"starting · {ago}"
    if job["state"] in ACTIVE:
        return f"running · {int(job.get('done') or 0):,}/{int(job['total']):,} tiles · {ago}"
    if job["state"] == "finished":
        return f"finished · {(job.get('summary') or {}).get('n_scored', 0):,} tiles scored · {ago}"
    return f"{job['state']} · {ago}" + (f" · {md_escape(job['error'])}" if job.get("error") else "")


def open_job(job: dict) -> None:
    """Choose the job's image, stride and resolution (and its model, when it is one offered)."""
    st.session_state[SOURCE_KEY], st.session_state[PATH_KEY] = "path", job["image"]
    st.session_state[STRIDE_KEY] = int(job.get("stride") or DEFAULT_STRIDE)
    if job.get("mpp") is not None:
        st.session_state[MPP_KEY] = float(job["mpp"])
    try:
        check_offered_model(job["model"])
        st.session_state[MODEL_KEY] = job["model"]
    except (PatchLensError, KeyError, OSError):
        pass  # the active model stays: its own heatmap of the image is shown or offered


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
    figure.add_trace(go.Heatmap(z=cells, **placed, zmin=0, zmax=1, colorscale=PLOTLY_SCALES[view["colormap"]],
                                opacity=view["opacity"], hoverinfo="skip", colorbar=dict(title="P(tumour)")))  # fmt: skip
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
        st.info(
            "This tile was not scored (glass/background): the tissue mask found (almost) no tissue there."
        )
        return
    try:
        patch = tile_pixels(str(image), _mtime(image), (summary["seconds"],), int(row), int(col), summary["mpp"],
                            summary["model_mpp"], summary["stride"])  # fmt: skip
    except PatchLensError as error:
        st.error(f"The tile could not be read: {md_escape(error)}")
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
    from PIL import Image

    thumb = np.asarray(Image.open(output_dir(key) / "thumbnail.png").convert("RGB"))
    follow_click(probabilities)
    selected = (st.session_state.get(ROW_KEY), st.session_state.get(COL_KEY))
    selected = selected if None not in selected else None
    st.plotly_chart(map_figure(thumb, cells, grid, probabilities, summary, threshold, view, selected), key=MAP_KEY,
                    on_select="rerun", selection_mode="points", width="stretch")  # fmt: skip
    st.caption("Click a tile (or set its row and column below) to see it. Drag to pan, scroll to zoom.")
    downloads(key)
    tile_panel(image, model_path, outputs, grid, threshold)


with page("Region"):
    model_path = required_model_path()
    st.caption(
        f"Model: {md_escape(model_label(model_path))} — scores 96 px tiles at {PCAM_MPP} µm/px over the tissue."
    )
    state_from_url()
    jobs_overview()
    image_path = chosen_image()
    state_to_url(image_path)
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
    st.session_state.setdefault(STRIDE_KEY, DEFAULT_STRIDE)
    stride = st.selectbox("Stride (px at the model's resolution)", STRIDES, key=STRIDE_KEY,
                          help="96 = tiles side by side; 48 or 32 overlap and average (4× or 9× the work).")  # fmt: skip
    state_to_url(image_path, stride, mpp if info["mpp"] is None else None)
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
