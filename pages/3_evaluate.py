"""Evaluate: metrics with bootstrap intervals, confusion matrix, ROC/PR, score histograms and
calibration, all driven by ONE threshold and derived from one cached set of predictions.

The page asks one core.evaluate.interpret.Interpretation for every number; ui.evaluate_panels draws
them. Moving the threshold re-derives every panel from the cached DataFrame; no model is called.
"""

import pandas as pd
import streamlit as st

from core.data.quality import OK
from core.errors import PatchLensError
from core.evaluate.calibration import calibration_note
from core.evaluate.interpret import Interpretation
from core.evaluate.predictions import (
    ALL_QUALITIES,
    HEADLINE_METRICS,
    flagged_mask,
    has_quality,
    metrics_by_quality,
)
from core.model.io import read_model_meta, resolve_model_path
from ui.boundary import error_boundary
from ui.evaluate_panels import (
    cell_patches,
    confusion_matrix,
    curve_charts,
    curves,
    metric_cards,
    presets,
    score_charts,
)
from ui.frame import page
from ui.prediction_source import PredictionSource, pick_source, show_source_notes
from ui.shared import URL_LEAVE_OUT, keep_flag, restore_flag
from ui.threshold import threshold_control
from ui.uncertainty import risk_coverage_section

LEAVE_OUT_KEY = "evaluate_leave_out_flagged"  # the toggle: every panel on the unflagged patches only


def leave_out_flagged(source: PredictionSource) -> tuple[str, str]:
    """The toggle that leaves flagged patches out of every panel (when any is flagged), kept in the
    URL; returns the quality of the rows evaluated and the key naming their cached views."""
    if not flagged_mask(source.predictions).any():
        return ALL_QUALITIES, source.key
    restore_flag(LEAVE_OUT_KEY, URL_LEAVE_OUT)  # a reload or a shared link keeps it
    leave_out = st.toggle(
        "Leave out flagged patches",
        key=LEAVE_OUT_KEY,
        help="Every panel below uses only the patches the input-quality gate passed (`ok`).",
    )
    keep_flag(URL_LEAVE_OUT, leave_out)
    return (OK, f"{source.key}:{OK}") if leave_out else (ALL_QUALITIES, source.key)


def interpretation_of(source: PredictionSource, quality: str) -> Interpretation:
    """The Interpretation of the source's rows of `quality`; the page stops with the reason if there is none."""
    with error_boundary("These predictions cannot be evaluated", stop=True):
        interpretation = Interpretation.from_predictions(source.predictions, quality=quality)
    if interpretation.n_unlabelled:
        st.caption(f"{interpretation.n_unlabelled:,} unlabelled rows are left out.")
    return interpretation


def quality_comparison(predictions: pd.DataFrame, threshold: float) -> None:
    """The headline metrics on all patches and without the flagged ones, when any is flagged."""
    if not has_quality(predictions):
        st.caption("No input-quality flags for these predictions (a run's stored validation predictions), "
                   "so every patch is counted.")  # fmt: skip
        return
    if not flagged_mask(predictions).any():
        st.caption("The input-quality gate flagged none of these patches.")
        return
    table = metrics_by_quality(predictions, threshold)
    left_out = int(table["n_flagged_left_out"].iloc[-1])
    st.markdown(
        f"**All patches vs. without flagged patches** at {threshold:.3f} · n flagged left out: {left_out:,}"
    )
    shown = table[["n", *HEADLINE_METRICS]].rename(columns={m: m.capitalize() for m in HEADLINE_METRICS})
    st.dataframe(shown.rename(columns={"Auc": "AUC"}), width="stretch", key="quality_metrics")


def model_calibration_note(model_path: str | None) -> str | None:
    """How the model's probabilities were calibrated, when its file is still there."""
    if not model_path:
        return None
    try:
        return calibration_note(read_model_meta(resolve_model_path(model_path)))
    except PatchLensError:  # the model file went away since the predictions were made
        return None


def download_metrics(metrics: dict) -> None:
    st.download_button(
        "Download these metrics (JSON)",
        data=pd.Series({k: v for k, v in metrics.items() if k != "undefined"}).to_json(indent=2),
        file_name="metrics.json",
        mime="application/json",
    )


with page("Evaluate"):
    source = pick_source()
    if source is None:
        st.stop()
    show_source_notes(source)
    quality, view_key = leave_out_flagged(source)
    interpretation = interpretation_of(source, quality)
    threshold = threshold_control(presets(view_key, interpretation))
    metrics = interpretation.metrics(threshold)
    quality_comparison(source.predictions, threshold)
    metric_cards(view_key, interpretation, metrics, threshold)
    found = curves(view_key, interpretation)
    left, right = st.columns([2, 3])
    with left:
        confusion_matrix(metrics, threshold)
    with right:
        cell_patches(interpretation, threshold, source.lookup)
    curve_charts(found, metrics, threshold, prevalence=interpretation.n_positive / len(interpretation))
    score_charts(interpretation, found, threshold, model_calibration_note(source.model_path))
    risk_coverage_section(interpretation.predictions, threshold)  # issue 23: uncertainty
    download_metrics(metrics)
