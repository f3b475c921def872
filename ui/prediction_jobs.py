"""The background jobs that score a dataset with one or more models (Evaluate, Compare, Mistakes,
Label issues) or compute its features (Feature map), as the pages start and follow them.

Each job runs through core.evaluate.jobs and is found by its cache key, so a reload, a page switch or
a second session attaches to the same job instead of losing it; ui.job_panel draws it.
"""

from __future__ import annotations

import streamlit as st

from core.jobs.status import LOADING_PHASE, QUEUED_PHASE, is_active
from ui.boundary import error_boundary
from ui.job_panel import JobView, done_of_total, fraction_done, job_outcome, job_panel
from ui.text import md_escape

STOP_KEY = "stop_prediction_job"  # the Stop button of the first job a page follows
NOT_COUNTING = (QUEUED_PHASE, LOADING_PHASE)  # phases before a job counts patches: said in words


def prediction_jobs(
    models: dict[str, str],
    dataset,
    *,
    tta: bool = False,
    features: bool = False,
    button: str = "Run the model on this dataset",
    key: str = "start_prediction_job",
) -> None:
    """Start, follow or report the jobs that compute each model's predictions on `dataset` (with
    `features`, the Feature map's features). `models` maps a model path to its title.

    The button starts every model that is not running yet; the page reruns as each job ends, and
    shows the result once none is missing.
    """
    from core.evaluate.jobs import job_key, launch, read_job, results_dir

    folder = results_dir(features=features)
    waiting = []
    for number, (model_path, title) in enumerate(models.items()):
        job_id = job_key(model_path, dataset, tta=tta, features=features)
        status = read_job(job_id, folder)
        if is_active(status):
            stop_key = STOP_KEY if number == 0 else f"{STOP_KEY}_{number}"
            job_panel(prediction_job_view(job_id, folder, md_escape(title), stop_key))
            continue
        doing = f"Computing the features of {title}" if features else f"Computing {title}"
        idle = (
            f"{md_escape(f'The features of {title}' if features else title)}: not computed yet. The model runs "
            f"once over {len(dataset):,} patches in the background; the result is kept on disk, so every "
            "threshold and view afterwards is instant."
        )
        job_outcome(status, doing=doing, idle=idle)
        waiting.append(model_path)
    if waiting and st.button(button, type="primary", key=key):
        with error_boundary("The job could not be started", also=(OSError,)) as outcome:
            for model_path in waiting:
                launch(model_path, dataset, tta=tta, features=features)
        if not outcome.failed:
            st.rerun()


def prediction_job_view(job_id: str, folder, title: str, stop_key: str) -> JobView:
    """How the job panel reads, stops and words one prediction (or features) job."""
    from core.evaluate.jobs import FEATURES_PHASE, job_dir, read_job, stop_job
    from core.jobs.status import stop_requested

    def progress(status: dict) -> tuple[float, str]:
        done, total, phase = *done_of_total(status), status.get("phase")
        if phase in NOT_COUNTING:
            return 0.0, f"{title}: {phase}"
        if not total:
            return 0.0, f"{title}: {LOADING_PHASE}"
        doing = "Computing the features of" if phase == FEATURES_PHASE else "Predicting with"
        return fraction_done(status), f"{doing} {title}… {done:,}/{total:,} patches"

    return JobView(
        key=job_id,
        title=title,
        read=lambda: read_job(job_id, folder),
        stop=lambda: stop_job(job_id, folder),
        stop_key=stop_key,
        progress=progress,
        stop_requested=lambda: stop_requested(job_dir(job_id, folder)),
        counted=lambda status: None if status.get("phase") in NOT_COUNTING else done_of_total(status),
    )
