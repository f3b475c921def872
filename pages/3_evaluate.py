"""Evaluate: metrics with bootstrap intervals, confusion matrix, ROC/PR, score histograms and
calibration, all driven by ONE threshold and derived from one cached set of predictions.

Moving the threshold re-derives every panel from the cached DataFrame; no model is called.
"""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.constants import LABEL_NAMES
from core.data.quality import OK
from core.errors import PatchLensError
from core.evaluate.calibration import calibration_note
from core.evaluate.interpret import CELL_NAMES, CELLS, Interpretation, clicked_cell
from core.evaluate.metrics import (
    bootstrap_ci,
    metrics_at,
    pr_points,
    reliability_curve,
    roc_points,
    threshold_presets,
)
from core.evaluate.predictions import (
    HEADLINE_METRICS,
    flagged_mask,
    has_quality,
    labelled_arrays,
    metrics_by_quality,
    with_quality,
)
from core.formatting import format_interval, format_metric, short_id
from core.model.io import read_model_meta, resolve_model_path
from ui.charts import curve, curve_figure, reference_line, threshold_marker
from ui.frame import page
from ui.gallery import patch_grid
from ui.prediction_source import pick_source, show_source_notes, threshold_control
from ui.shared import URL_LEAVE_OUT, keep_flag, restore_flag
from ui.text import md_escape
from ui.uncertainty import risk_coverage_section

BOOTSTRAP_SAMPLES = 1000
CELL_PATCHES = 24
CELL_KEY = "evaluate_cell"  # the radio that picks the cell whose patches are shown
MATRIX_KEY = "confusion"  # the matrix chart; its selection holds the last click
CLICK_KEY = "evaluate_cell_clicked"  # the cell of the last click on the matrix seen
DEFAULT_CELL = "FP"
MATRIX_COLUMNS = {0: "called normal", 1: "called tumour"}
MATRIX_ROWS = {0: "normal (0)", 1: "tumour (1)"}
CLASS_COLOURS = {0: "#4c78a8", 1: "#e45756"}
LEAVE_OUT_KEY = "evaluate_leave_out_flagged"  # the toggle: every panel on the unflagged patches only
CARDS = [  # (key, label, help)
    ("auc", "AUC", "Area under the ROC curve; threshold-free."),
    ("accuracy", "Accuracy", None),
    ("sensitivity", "Sensitivity", "Tumour patches called tumour (recall, TPR)."),
    ("specificity", "Specificity", "Normal patches called normal (TNR)."),
    ("precision", "Precision", "Patches called tumour that are tumour (PPV)."),
    ("f1", "F1", None),
    ("balanced_accuracy", "Balanced accuracy", "Mean of sensitivity and specificity."),
    ("average_precision", "Average precision", "Area under the precision-recall curve; threshold-free."),
    ("log_loss", "Log loss", "Lower is better; threshold-free."),
    ("brier", "Brier score", "Mean squared error of the probability; lower is better."),
    ("ece", "ECE", "Expected calibration error over 10 bins; lower is better."),
]


@st.cache_data(show_spinner="Bootstrapping 95 % intervals…", max_entries=64)
def interval(source_key: str, metric: str, threshold: float, _labels, _probs):
    """Keyed by the predictions' identity (file + mtime); AUC ignores the threshold."""
    return bootstrap_ci(_labels, _probs, metric, threshold, n_boot=BOOTSTRAP_SAMPLES, seed=0)


@st.cache_data(show_spinner=False, max_entries=16)
def presets_for(source_key: str, _labels, _probs):
    return threshold_presets(_labels, _probs)


@st.cache_data(show_spinner=False, max_entries=16)
def curves_for(source_key: str, _labels, _probs):
    return roc_points(_labels, _probs), pr_points(_labels, _probs), reliability_curve(_labels, _probs)


def confusion_figure(counts: list[int], threshold: float, chosen: str) -> go.Figure:
    """The 2x2 matrix as four big square markers (Plotly reports clicks on markers, not on a
    heatmap's cells), in CELLS order; the chosen cell is outlined."""
    names = list(CELLS)
    total = max(sum(counts), 1)
    text = [f"<b>{n}</b><br>{c:,}<br>({100 * c / total:.1f} %)" for n, c in zip(names, counts, strict=True)]
    dark = [c > 0.6 * max(counts) for c in counts]
    figure = go.Figure(go.Scatter(
        x=[MATRIX_COLUMNS[CELLS[n][1]] for n in names], y=[MATRIX_ROWS[CELLS[n][0]] for n in names],
        mode="markers+text", text=text, textfont=dict(color=["white" if d else "#1f2d3d" for d in dark], size=14),
        marker=dict(symbol="square", size=92, color=counts, colorscale="Blues", cmin=0,
                    line=dict(width=[4 if n == chosen else 0 for n in names], color="#e45756")),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        hovertemplate="%{text}<extra>click to show these patches</extra>",
    ))  # fmt: skip
    figure.update_xaxes(title=f"prediction at {threshold:.3f}", fixedrange=True, range=[-0.5, 1.5])
    figure.update_yaxes(title="true label", autorange="reversed", fixedrange=True, range=[-0.5, 1.5])
    figure.update_layout(height=300, margin=dict(t=10, b=10, l=10, r=10), clickmode="event+select")
    return figure


def matrix_clicks() -> list[dict]:
    """The points selected on the matrix chart, as the browser reported them for this run."""
    state = st.session_state.get(MATRIX_KEY) or {}
    return list((state.get("selection") or {}).get("points") or [])


def follow_click(cell: str | None) -> None:
    """A new click on the matrix selects that cell in the radio below (drawn after the chart).

    A click stays in the chart's selection on later reruns, so only a change is followed: choosing
    another cell with the radio afterwards is not undone by the old click.
    """
    if cell is not None and cell != st.session_state.get(CLICK_KEY):
        st.session_state[CELL_KEY] = cell
    st.session_state[CLICK_KEY] = cell


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


with page("Evaluate"):
    source = pick_source()
    if source is None:
        st.stop()
    show_source_notes(source)
    predictions, view_key = source.predictions, source.key
    if flagged_mask(predictions).any():
        restore_flag(LEAVE_OUT_KEY, URL_LEAVE_OUT)  # a reload or a shared link keeps it
        leave_out = st.toggle(
            "Leave out flagged patches",
            key=LEAVE_OUT_KEY,
            help="Every panel below uses only the patches the input-quality gate passed (`ok`).",
        )
        keep_flag(URL_LEAVE_OUT, leave_out)
        if leave_out:
            predictions = with_quality(predictions, OK)
            view_key = f"{source.key}:{OK}"  # the cached views below are of these rows only
    try:
        labels, probs = labelled_arrays(predictions)
    except PatchLensError as error:
        st.error(f"These predictions cannot be evaluated: {md_escape(error)}")
        st.stop()
    if len(labels) < len(predictions):
        st.caption(f"{len(predictions) - len(labels):,} unlabelled rows are left out.")

    threshold = threshold_control(presets_for(view_key, labels, probs))
    metrics = metrics_at(labels, probs, threshold)
    quality_comparison(source.predictions, threshold)

    # --- metric cards ---------------------------------------------------------------------------
    intervals = {
        "auc": interval(view_key, "auc", 0.5, labels, probs),
        "accuracy": interval(view_key, "accuracy", threshold, labels, probs),
    }
    for start in range(0, len(CARDS), 6):
        row = st.columns(6)
        for column, (key, label, help_text) in zip(row, CARDS[start : start + 6], strict=False):
            reason = metrics["undefined"].get(key)
            column.metric(label, format_metric(metrics[key]), help=reason or help_text)
            if key in intervals:
                column.caption(format_interval(intervals[key]))
    positives = int(labels.sum())
    st.caption(
        f"{metrics['n']:,} patches ({positives:,} tumour, {metrics['n'] - positives:,} normal) at threshold "
        f"{threshold:.3f}. Intervals: percentile bootstrap, {BOOTSTRAP_SAMPLES} resamples of patches (patches of "
        "one slide are not independent, so true intervals are wider)."
    )

    roc, pr, calibration = curves_for(view_key, labels, probs)
    (tn, fp), (fn, tp) = metrics["confusion"]

    # --- confusion matrix + patches of one cell ------------------------------------------------
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Confusion matrix")
        st.caption("Click a cell to see its patches.")
        counts = [tn, fp, fn, tp]  # CELLS order
        follow_click(clicked_cell(matrix_clicks()))  # before drawing, so the outline shows the new cell
        st.plotly_chart(
            confusion_figure(counts, threshold, st.session_state.get(CELL_KEY, DEFAULT_CELL)),
            width="stretch",
            key=MATRIX_KEY,
            on_select="rerun",
            selection_mode="points",
            config={"displayModeBar": False},
        )
        st.dataframe(
            pd.DataFrame({"cell": list(CELLS), "count": counts}).set_index("cell").T,
            width="stretch",
            key="confusion_counts",
        )

    with right:
        st.subheader("Patches in one cell")
        cell = st.radio(
            "Cell",
            list(CELLS),
            format_func=lambda c: f"{c} · {CELL_NAMES[c]}",
            horizontal=True,
            index=list(CELLS).index(DEFAULT_CELL),
            key=CELL_KEY,
        )
        rows = Interpretation(predictions).cell(cell, threshold)
        st.caption(f"{len(rows):,} patches; the {min(CELL_PATCHES, len(rows))} most confident shown.")
        shown = rows.head(CELL_PATCHES)
        if source.lookup is not None and len(shown):
            patches, found, missing = source.lookup.read(shown["id"].tolist())
            prob_of = dict(zip(shown["id"], shown["prob"], strict=True))
            patch_grid(list(patches), [f"p={prob_of[i]:.3f} · {short_id(i)}" for i in found], columns=6)
            if missing:
                st.caption(
                    f"{len(missing)} patch(es) could not be read: " + "; ".join(list(missing.values())[:3])
                )
        with st.expander("Table of this cell"):
            st.dataframe(shown[["id", "label", "prob", "confidence"]], hide_index=True, width="stretch")

    # --- curves ---------------------------------------------------------------------------------
    roc_column, pr_column = st.columns(2)
    sensitivity = metrics["sensitivity"] or 0.0
    specificity = metrics["specificity"] if metrics["specificity"] is not None else 1.0
    curve_layout = dict(height=380, margin=dict(t=40, b=20))
    figure = curve_figure(
        [
            curve(roc.fpr, roc.tpr, "ROC", thresholds=roc.thresholds, axes=("FPR", "TPR")),
            reference_line("chance"),
            threshold_marker(1 - specificity, sensitivity, threshold),
        ],
        title=f"ROC (AUC {format_metric(roc.auc)})",
        x_title="false positive rate (1 − specificity)",
        y_title="sensitivity",
        legend=dict(x=0.55, y=0.08),
        **curve_layout,
    )
    roc_column.plotly_chart(figure, width="stretch", key="roc")
    prevalence = positives / len(labels)
    pr_traces = [
        curve(pr.recall, pr.precision, "PR", thresholds=pr.thresholds, axes=("recall", "precision")),
        reference_line("prevalence", y=(prevalence, prevalence)),
    ]
    if metrics["precision"] is not None:
        pr_traces.append(threshold_marker(sensitivity, metrics["precision"], threshold))
    figure = curve_figure(
        pr_traces,
        title=f"Precision-recall (AP {format_metric(pr.average_precision)})",
        x_title="recall (sensitivity)",
        y_title="precision",
        legend=dict(x=0.02, y=0.08),
        **curve_layout,
    )
    pr_column.plotly_chart(figure, width="stretch", key="pr")

    # --- score histograms + reliability ----------------------------------------------------------
    hist_column, calibration_column = st.columns(2)
    with hist_column:
        figure = go.Figure()
        for value in (0, 1):
            figure.add_trace(
                go.Histogram(
                    x=probs[labels == value],
                    name=f"{LABEL_NAMES[value]} ({value})",
                    xbins=dict(start=0, end=1, size=0.02),
                    opacity=0.6,
                    marker_color=CLASS_COLOURS[value],
                )
            )
        figure.add_vline(
            x=threshold, line=dict(color="black", dash="dash"), annotation_text=f"{threshold:.3f}"
        )
        figure.update_layout(
            title="Scores per true class",
            barmode="overlay",
            xaxis_title="P(tumour)",
            yaxis_title="patches",
            height=360,
            margin=dict(t=40, b=20),
        )
        log_scale = st.toggle("Log count axis", False, key="hist_log")
        if log_scale:
            figure.update_yaxes(type="log")
        st.plotly_chart(figure, width="stretch", key="histogram")
    with calibration_column:
        filled = calibration.count > 0
        centres = (calibration.bin_edges[:-1] + calibration.bin_edges[1:]) / 2
        figure = go.Figure()
        figure.add_trace(
            go.Bar(
                x=centres[filled],
                y=calibration.count[filled] / len(labels),
                name="share of patches",
                yaxis="y2",
                marker_color="lightgrey",
                opacity=0.5,
                width=0.09,
            )
        )
        figure.add_trace(reference_line("perfect calibration"))
        figure.add_trace(
            go.Scatter(
                x=calibration.mean_predicted[filled],
                y=calibration.observed_fraction[filled],
                mode="lines+markers",
                name="model",
                marker_color="#4c78a8",
                customdata=calibration.count[filled],
                hovertemplate="mean P %{x:.3f}<br>tumour fraction %{y:.3f}<br>%{customdata} patches",
            )
        )
        figure.add_vline(x=threshold, line=dict(color="black", dash="dash"))
        figure.update_layout(
            title=f"Reliability (ECE {calibration.ece:.3f})", xaxis=dict(title="mean predicted P(tumour)", range=[0, 1]),
            yaxis=dict(title="observed tumour fraction", range=[0, 1]),
            yaxis2=dict(overlaying="y", side="right", range=[0, 1], showgrid=False, title="share of patches"),
            height=360, margin=dict(t=40, b=20), legend=dict(x=0.02, y=0.98),
        )  # fmt: skip
        st.plotly_chart(figure, width="stretch", key="reliability")
        if source.model_path:
            try:
                st.caption(calibration_note(read_model_meta(resolve_model_path(source.model_path))))
            except PatchLensError:  # the model file went away since the predictions were made
                pass

    risk_coverage_section(predictions, threshold)  # issue 23: uncertainty
    st.download_button(
        "Download these metrics (JSON)",
        data=pd.Series({k: v for k, v in metrics.items() if k != "undefined"}).to_json(indent=2),
        file_name="metrics.json",
        mime="application/json",
    )
