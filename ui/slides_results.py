"""The Slides page's results: the sortable table of slides (with thumbnails), slide-level ROC and
metrics at the slide threshold (ui.threshold.SLIDE_THRESHOLD, not the patch threshold), one slide's map
with the annotation's outline and the model's at the shared patch threshold, downloads.
Everything is read from the cohort's folder (core.slides.cohort); nothing here runs the model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.slides.metrics import labelled_scores, slide_metrics, slide_presets
from ui.text import md_escape
from ui.threshold import SLIDE_THRESHOLD, threshold_control

TABLE_COLUMNS = ["thumbnail", "slide", "score", "label", "status", "tumour_area_mm2", "n_scored", "n_uncertain_tumour",
                 "message"]  # fmt: skip
SLIDE_KEY = "slides_selected"
ANNOTATION_COLOUR, MODEL_COLOUR = "#00c853", "#2962ff"  # green and blue: both read over H&E and the map


def read_cohort(folder: Path) -> tuple[pd.DataFrame, dict] | None:
    """(slides.csv, summary.json) of a complete cohort folder, or None."""
    try:
        return pd.read_csv(folder / "slides.csv"), json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail_uri(path: str, mtime: float) -> str | None:
    """A small PNG data URI of a slide's thumbnail.png (for the table's image column)."""
    import io

    from PIL import Image

    try:
        image = Image.open(path).convert("RGB")
    except OSError:
        return None
    image.thumbnail((96, 96))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _thumbnail(folder: Path, slide: str) -> str | None:
    path = folder / slide / "thumbnail.png"
    return thumbnail_uri(str(path), path.stat().st_mtime) if path.is_file() else None


def slide_table(frame: pd.DataFrame, folder: Path) -> None:
    """Every slide, sortable by any column (click its header)."""
    shown = frame.assign(thumbnail=[_thumbnail(folder, slide) for slide in frame["slide"]])
    shown = shown.reindex(columns=[c for c in TABLE_COLUMNS if c in shown.columns or c == "label"])
    st.dataframe(shown, hide_index=True, width="stretch", key="slides_table", column_config={
        "thumbnail": st.column_config.ImageColumn("", width="small"),
        "score": st.column_config.NumberColumn(format="%.3f"),
        "tumour_area_mm2": st.column_config.NumberColumn("tumour mm²", format="%.3f"),
        "n_uncertain_tumour": st.column_config.NumberColumn(
            "uncertain tumour tiles", help="Tumour tiles whose 8 views disagree (scored with uncertainty)."
        ),
    })  # fmt: skip


def metrics_panel(frame: pd.DataFrame) -> None:
    """The slide threshold (its own slider, with presets from the slide ROC), then slide-level AUC (95 %
    bootstrap interval), accuracy, sensitivity and specificity at it, and the ROC with that point."""
    labels, scores = labelled_scores(frame.to_dict("records"))
    if len(set(labels)) < 2:
        st.info("Slide-level metrics need slide labels of both classes (a labels CSV with slide,label).")
        return
    presets = slide_presets(labels, scores)
    threshold = threshold_control(presets, SLIDE_THRESHOLD)
    metrics = slide_metrics(labels, scores, threshold)
    low, high = metrics["auc_ci"] or (np.nan, np.nan)
    cards = st.columns(4)
    cards[0].metric(
        "Slide AUC", f"{metrics['auc']:.3f}", help=f"95 % bootstrap interval {low:.3f}–{high:.3f}"
    )
    cards[0].caption(f"[{low:.3f}, {high:.3f}]")
    for card, name in zip(cards[1:], ("accuracy", "sensitivity", "specificity"), strict=True):
        value = metrics[name]
        card.metric(name.capitalize(), "n/a" if value is None else f"{value:.3f}",
                    help=f"of {metrics['n']} labelled slides, at slide threshold {threshold:.3f}")  # fmt: skip
    same_call = _one_call_for_all(scores, threshold)
    if same_call:
        st.warning(f"At slide threshold {threshold:.3f} every labelled slide is called {same_call}: a slide score "
                   f"aggregates many tiles, so choose its threshold on the slide ROC (Youden's J on these slides: "
                   f"{presets['youden']:.3f}).")  # fmt: skip
    st.plotly_chart(_roc_figure(labels, scores, metrics), key="slides_roc")


def _one_call_for_all(scores, threshold: float) -> str | None:
    """'tumour' or 'normal' when `threshold` calls every one of `scores` the same, else None."""
    called = np.asarray(scores) >= threshold
    return "tumour" if called.all() else "normal" if not called.any() else None


def _roc_figure(labels, scores, metrics: dict) -> go.Figure:
    from core.evaluate.metrics import roc_points

    roc = roc_points(np.asarray(labels), np.asarray(scores))
    figure = go.Figure(go.Scatter(x=roc.fpr, y=roc.tpr, mode="lines+markers", name="slides"))
    if metrics["sensitivity"] is not None and metrics["specificity"] is not None:
        figure.add_trace(go.Scatter(x=[1 - metrics["specificity"]], y=[metrics["sensitivity"]], mode="markers",
                                    marker=dict(size=12, symbol="x"), name=f"at {metrics['threshold']:.3f}"))  # fmt: skip
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), title="Slide-level ROC",
                         xaxis_title="1 − specificity", yaxis_title="sensitivity")  # fmt: skip
    return figure


def _rings(geometry, scale: float) -> list[np.ndarray]:
    from core.slides.annotations import exterior_rings

    return [ring * scale for ring in exterior_rings(geometry)]


def _outline_traces(rings: list[np.ndarray], colour: str, name: str, dash: str = "solid") -> list[go.Scatter]:
    return [go.Scatter(x=ring[:, 0], y=ring[:, 1], mode="lines", line=dict(color=colour, width=2, dash=dash), name=name,
                       showlegend=index == 0, hoverinfo="skip") for index, ring in enumerate(rings)]  # fmt: skip


def slide_map(folder: Path, slide: str, annotations: Path | None, threshold: float) -> None:
    """The slide's thumbnail, its map and the outlines: the pathologist's (green) and the model's (blue)."""
    from PIL import Image

    from core.errors import AnnotationError
    from core.region.outputs import cell_map, read_outputs
    from core.slides.annotations import outline_geometry, read_annotations
    from core.slides.outputs import grid_of

    outputs = read_outputs(folder / slide)
    if outputs is None:
        st.info(f"{md_escape(slide)} has no map (it failed or is not finished).")
        return
    summary, grid = outputs["summary"], grid_of(outputs["summary"])
    scale, thumb = (
        summary["thumbnail_scale"],
        np.asarray(Image.open(folder / slide / "thumbnail.png").convert("RGB")),
    )
    cells = cell_map(outputs["probabilities"], outputs["quality"], grid)
    step = grid.stride / grid.scale * scale
    figure = go.Figure([go.Image(z=thumb), go.Heatmap(z=np.where(cells >= 0, cells, np.nan), x0=step / 2, dx=step,
                       y0=step / 2, dy=step, zmin=0, zmax=1, opacity=0.45, colorscale="Inferno", name="P(tumour)")])  # fmt: skip
    figure.add_traces(
        _outline_traces(_rings(outline_geometry(cells, grid, threshold), scale), MODEL_COLOUR, "model")
    )
    note = annotations / f"{slide}.geojson" if annotations else None
    if note is not None and note.is_file():
        try:
            tumour = read_annotations(note).tumour
            figure.add_traces(_outline_traces(_rings(tumour, scale), ANNOTATION_COLOUR, "annotation", "dash"))
        except AnnotationError as error:
            st.warning(md_escape(error))
    figure.update_layout(height=520, margin=dict(l=0, r=0, t=0, b=0), legend=dict(orientation="h"))
    figure.update_yaxes(autorange="reversed", scaleanchor="x")
    st.plotly_chart(figure, key="slides_map")
    st.caption(f"{md_escape(slide)}: {summary['n_scored']:,} tiles scored; blue = the model's outline at "
               f"{threshold:.3f}, dashed green = the tumour annotation (where they agree, both show).")  # fmt: skip


def downloads(folder: Path, slide: str | None) -> None:
    files = [folder / "slides.csv", folder / "summary.json"]
    if slide:
        files += [folder / slide / "outlines.geojson", folder / slide / "tiles.geojson"]
    columns = st.columns(len(files))
    for column, path in zip(columns, files, strict=True):
        if path.is_file():
            name = path.name if path.parent == folder else f"{slide}_{path.name}"
            column.download_button(
                name, data=path.read_bytes(), file_name=name, key=f"slides_download_{name}"
            )
