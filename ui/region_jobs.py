"""The Region page's background jobs: the list of running and recent heatmap jobs (each with Open),
and the one heatmap job of the chosen image, stride and resolution, started, followed through
ui.job_panel (found again by its key after a reload or from a second session, stoppable) or reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from core.constants import DEFAULT_THRESHOLD
from core.errors import PatchLensError
from core.jobs.status import ACTIVE_STATES, is_active
from core.region.jobs import (
    LOADING_PHASE,
    SCORING_PHASE,
    job_dir,
    launch,
    list_jobs,
    output_dir,
    read_job,
    stop_job,
)
from core.region.outputs import read_outputs
from core.region.tiling import DEFAULT_STRIDE
from ui.boundary import error_boundary
from ui.job_panel import JobView, done_of_total, fraction_done, job_outcome, job_panel
from ui.region_inputs import MPP_KEY, PATH_KEY, SOURCE_KEY, STRIDE_KEY
from ui.shared import MODEL_KEY, check_offered_model, model_label
from ui.text import md_escape

IDLE = (
    "Not computed yet: the model scores every tissue tile in the background; you may reload "
    "the page or come back later."
)


def jobs_overview() -> None:
    """The running and recent heatmap jobs of this workspace, each with Open (its image, stride,
    resolution and model), so a job is found again after a reload or from another session."""
    jobs = list_jobs()
    if not jobs:
        return
    running = sum(job["state"] in ACTIVE_STATES for job in jobs)
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
    if job["state"] in ACTIVE_STATES and not job.get("total"):
        return f"starting · {ago}"
    if job["state"] in ACTIVE_STATES:
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
        pass  # not an error: the active model stays, and its own heatmap of the image is shown or offered


# --------------------------------------------------------------------------- the job


def heatmap_job(key: str | None, model_path: str, image: Path, stride: int, mpp: float) -> dict | None:
    """Start, follow (ui.job_panel) or report the heatmap job; returns its outputs once finished."""
    status = read_job(key) if key else None
    if is_active(status):
        job_panel(heatmap_view(key))
        return None
    if status and status["state"] == "finished":
        outputs = read_outputs(output_dir(key))
        if outputs is not None:
            return outputs
    job_outcome(status, doing="The heatmap", idle=IDLE)
    if st.button("Compute the heatmap", type="primary", key="region_start"):
        with error_boundary("The heatmap could not be started", also=(OSError,)) as outcome:
            launch(model_path, image, stride=stride, mpp=mpp, threshold=DEFAULT_THRESHOLD)
        if not outcome.failed:
            st.rerun()
    return None


def heatmap_view(key: str) -> JobView:
    """How the job panel reads, stops and words one heatmap job (tiles, tiles/s, ETA)."""
    from core.jobs.status import stop_requested

    return JobView(
        key=key,
        title="The heatmap",
        read=lambda: read_job(key),
        stop=lambda: stop_job(key),
        stop_key="region_stop",
        progress=lambda status: (fraction_done(status), scoring_text(status)),
        stop_requested=lambda: stop_requested(job_dir(key)),
        unit="tiles",
    )


def scoring_text(job: dict) -> str:
    done, total = done_of_total(job)
    if job.get("phase") != SCORING_PHASE or not total:
        return job.get("phase") or LOADING_PHASE
    eta = job.get("eta_s")
    return f"Scoring tiles… {done:,}/{total:,} · {job.get('patches_per_s') or 0:.0f} tiles/s" + (
        f" · ETA {eta:.0f} s" if eta is not None else ""
    )
