"""The job kinds: what each computes, the `python -m core` command its task runs, and whether the
engine may run it again.

Every kind but training is idempotent by key (its outputs are written atomically and a complete
folder is never recomputed), so Dask reruns it when its worker dies and `retries` reruns it when the
task itself raised. Training is never rerun: a lost worker leaves its run failed, in words, with its
best checkpoint kept for Resume (core.train.job.run_engine_training).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    name: str
    command: str  # the `python -m core` command the task runs
    computes: str
    retries: int = 2
    log_name: str = "job.log"


KINDS = {
    kind.name: kind
    for kind in (
        JobKind("predict", "predict-job", "a model's cached predictions on a dataset"),
        JobKind("features", "predict-job", "a model's cached penultimate-layer features on a dataset"),
        JobKind("heatmap", "heatmap-job", "a region's or slide's tumour-probability heatmap"),
        JobKind(
            "folds", "label-issues", "cross-validated out-of-fold probabilities and label-issue suspects"
        ),
        JobKind("slides", "slides-job", "a cohort of slides: each slide's heatmap, slide scores and metrics"),
        JobKind("train", "train", "a trained model and its run record", retries=0, log_name="train.log"),
    )
}
