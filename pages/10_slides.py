"""Slides: a cohort of slides scored as one background job, measured at the slide level.

Choose a folder of slides inside the data roots and, optionally, a labels CSV (slide,label) and a
folder of QuPath annotations (<slide>.geojson). The cohort runs in its own process (core.slides.jobs):
progress per slide, Stop, and the same job found again after a reload or from a second session (the
inputs live in the URL and the job's key is computed from them). Then: a sortable table of slides,
slide-level ROC and metrics at the slide threshold (a slider of its own, with presets from the slide
ROC), one slide's map with the annotation's outline and the model's at the shared patch threshold, and
downloads. Slides already scored for the same model and options are not
scored again.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import PatchLensError
from core.jobs.status import stop_requested
from core.settings import check_allowed
from core.slides.aggregate import AGGREGATIONS, DEFAULT_AGGREGATE
from core.slides.jobs import (
    LOADING_PHASE,
    SCORING_PHASE,
    job_dir,
    job_key,
    launch,
    output_dir,
    read_job,
    stop_job,
)
from core.slides.task import SlideOptions
from ui.frame import page
from ui.job_panel import JobView, done_of_total, fraction_done
from ui.job_panel import job_panel as ui_job_panel
from ui.shared import (
    extra_roots,
    from_url,
    keep_flag,
    model_label,
    one_of,
    required_model_path,
    restore_flag,
    to_url,
)
from ui.slides_results import SLIDE_KEY, downloads, metrics_panel, read_cohort, slide_map, slide_table
from ui.text import md_escape
from ui.threshold import threshold_control

INPUTS = {
    "folder": "Slides folder",
    "labels": "Labels CSV (optional)",
    "annotations": "Annotations folder (optional)",
}
AGGREGATE_KEY, URL_AGGREGATE = "slides_aggregate", "slides_aggregate"
UNCERTAINTY_KEY = URL_UNCERTAINTY = "slides_uncertainty"
UNCERTAINTY_HELP = (
    "Score every tile with its 8 flipped/rotated views (about 8x the time): each slide then counts its "
    "tumour tiles whose views disagree (uncertain), and the Region page can draw that layer."
)


def _state_key(name: str) -> str:
    return f"slides_{name}"


def chosen_inputs() -> dict[str, Path | None] | None:
    """The folder, labels and annotations typed (kept in the URL), each checked inside the data roots;
    None (with the reason shown) until a usable folder is given."""
    chosen: dict[str, Path | None] = {}
    for name, label in INPUTS.items():
        from_url(_state_key(name), _state_key(name), str)
        text = st.text_input(label, key=_state_key(name)).strip()
        to_url(_state_key(name), text or None)
        chosen[name] = None
        if text:
            try:
                chosen[name] = check_allowed(text, extra_roots())
            except PatchLensError as error:
                st.error(md_escape(error))
                return None
    if chosen["folder"] is None or not chosen["folder"].is_dir():
        st.info("Type a folder of slides (PNG, TIFF, SVS…) inside the data roots: every slide gets a heatmap "
                "and a slide score.")  # fmt: skip
        return None
    return chosen


def chosen_aggregate() -> str:
    from_url(AGGREGATE_KEY, URL_AGGREGATE, one_of(tuple(AGGREGATIONS)))
    st.session_state.setdefault(AGGREGATE_KEY, DEFAULT_AGGREGATE)
    aggregate = st.selectbox("Slide score", tuple(AGGREGATIONS), key=AGGREGATE_KEY,
                             help="How the tile probabilities become one score per slide (BENCHMARKS.md).")  # fmt: skip
    to_url(URL_AGGREGATE, None if aggregate == DEFAULT_AGGREGATE else aggregate)
    return aggregate


def chosen_options() -> SlideOptions:
    """The scoring options: per-tile uncertainty or not (kept in the URL)."""
    restore_flag(UNCERTAINTY_KEY, URL_UNCERTAINTY)
    uncertainty = st.checkbox("Uncertainty per tile (8 views)", key=UNCERTAINTY_KEY, help=UNCERTAINTY_HELP)
    keep_flag(URL_UNCERTAINTY, uncertainty)
    return SlideOptions(uncertainty=uncertainty)


def job_panel(model_path: str, inputs: dict, aggregate: str, options: SlideOptions) -> str:
    """Start, follow or report the cohort job; returns its key."""
    key = job_key(
        model_path,
        inputs["folder"],
        labels=inputs["labels"],
        annotations=inputs["annotations"],
        options=options,
    )
    job = read_job(key)
    if job and job["state"] in ("queued", "running"):
        job_progress(key)
        st.stop()
    if job and job["state"] == "failed":
        st.error(f"The cohort failed: {md_escape(job.get('error') or 'no reason given')}")
    elif job and job["state"] == "stopped":
        st.info("The cohort was stopped; run it again to finish it (slides already scored are kept).")
    label = "Score the cohort" if not job else "Score again (only what changed)"
    if st.button(label, type="primary", key="slides_start"):
        try:
            launch(model_path, inputs["folder"], labels=inputs["labels"], annotations=inputs["annotations"],
                   options=options, aggregate=aggregate)  # fmt: skip
        except (PatchLensError, OSError) as error:
            st.error(f"The cohort could not be started: {md_escape(error)}")
            return key
        st.rerun()
    return key


def job_progress(key: str) -> None:
    """The running cohort on the one job panel: slides done, the last one, tiles/s, ETA; Stop."""
    ui_job_panel(
        JobView(
            key=key,
            title="The cohort",
            read=lambda: read_job(key),
            stop=lambda: stop_job(key),
            stop_key="slides_stop",
            progress=lambda status: (fraction_done(status), progress_text(status, *done_of_total(status))),
            stop_requested=lambda: stop_requested(job_dir(key)),
            unit="slides",
        )
    )


def progress_text(job: dict, done: int, total: int) -> str:
    if job.get("phase") != SCORING_PHASE or not total:
        return job.get("phase") or LOADING_PHASE
    eta = job.get("eta_s")
    last = f" · last {job['last']}" if job.get("last") else ""
    return f"Slides {done}/{total}{last} · {job.get('tiles_per_s') or 0:.0f} tiles/s" + (
        f" · ETA {eta:.0f} s" if eta is not None else ""
    )


def results(folder: Path, annotations: Path | None, aggregate: str) -> None:
    found = read_cohort(folder)
    if found is None:
        return
    frame, summary = found
    frame["score"] = frame[f"score_{aggregate}"]  # every aggregation is stored: switching needs no re-run
    st.subheader("Slides")
    st.caption(f"{summary['n_slides']} slides, {summary['n_failed']} failed, {summary['n_cached']} reused; "
               f"score = {md_escape(aggregate)}. Click a column header to sort.")  # fmt: skip
    slide_table(frame, folder)
    metrics_panel(frame)  # at the slide threshold, which has its own slider
    threshold = threshold_control()  # the patch threshold: the model's outline on the slide map
    scored = frame.loc[frame["status"].isin(["done", "cached"]), "slide"].tolist()
    slide = st.selectbox("Slide", scored, key=SLIDE_KEY) if scored else None
    if slide:
        slide_map(folder, slide, annotations, threshold)
    downloads(folder, slide)


with page("Slides"):
    model_path = required_model_path()
    st.caption(f"Model: {md_escape(model_label(model_path))} — one heatmap and one score per slide.")
    inputs = chosen_inputs()
    if inputs is None:
        st.stop()
    aggregate = chosen_aggregate()
    key = job_panel(model_path, inputs, aggregate, chosen_options())
    results(output_dir(key), inputs["annotations"], aggregate)
