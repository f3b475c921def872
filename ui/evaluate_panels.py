"""The Evaluate page's panels, each drawn from one core.evaluate.interpret.Interpretation at one
threshold: the metric cards with their bootstrap intervals, the clickable confusion matrix and the
patches of one cell, the ROC and precision-recall curves, the score histograms and the reliability
diagram. The figures are ui.charts'; the numbers are the Interpretation's.

The threshold-free views (presets, curves, the AUC interval) are cached per set of predictions: the
`view_key` names them (the predictions file and its mtime, plus ':ok' when flagged patches are left
out), so moving the threshold re-derives only what depends on it.

Session state keys:
  evaluate_cell            the radio that picks the cell whose patches are shown
  confusion                the matrix chart; its selection holds the last click
  evaluate_cell_clicked    the cell of the last click on the matrix seen
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.evaluate.interpret import BOOTSTRAP_SAMPLES, CELL_NAMES, CELLS, Curves, Interpretation
from core.formatting import format_interval, format_metric, short_id
from ui.charts import confusion_figure, pr_figure, reliability_figure, roc_figure, scores_histogram
from ui.gallery import patch_grid

CELL_PATCHES = 24
CELL_KEY = "evaluate_cell"
MATRIX_KEY = "confusion"
CLICK_KEY = "evaluate_cell_clicked"
DEFAULT_CELL = "FP"
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


# --------------------------------------------------------------------------- cached views


@st.cache_data(show_spinner="Bootstrapping 95 % intervals…", max_entries=64)
def interval(view_key: str, metric: str, threshold: float, _interpretation: Interpretation):
    """Keyed by the predictions' identity; AUC is asked at 0.5 always (it ignores the threshold)."""
    return _interpretation.interval(metric, threshold)


@st.cache_data(show_spinner=False, max_entries=16)
def presets(view_key: str, _interpretation: Interpretation) -> dict[str, float | None]:
    return _interpretation.presets()


@st.cache_data(show_spinner=False, max_entries=16)
def curves(view_key: str, _interpretation: Interpretation) -> Curves:
    return _interpretation.curves()


# --------------------------------------------------------------------------- metric cards


def metric_cards(view_key: str, interpretation: Interpretation, metrics: dict, threshold: float) -> None:
    """Eleven metrics, six to a row, AUC and accuracy with their intervals; what they were computed on."""
    intervals = {
        "auc": interval(view_key, "auc", 0.5, interpretation),
        "accuracy": interval(view_key, "accuracy", threshold, interpretation),
    }
    for start in range(0, len(CARDS), 6):
        row = st.columns(6)
        for column, (key, label, help_text) in zip(row, CARDS[start : start + 6], strict=False):
            reason = metrics["undefined"].get(key)
            column.metric(label, format_metric(metrics[key]), help=reason or help_text)
            if key in intervals:
                column.caption(format_interval(intervals[key]))
    positives = interpretation.n_positive
    st.caption(
        f"{metrics['n']:,} patches ({positives:,} tumour, {metrics['n'] - positives:,} normal) at threshold "
        f"{threshold:.3f}. Intervals: percentile bootstrap, {BOOTSTRAP_SAMPLES} resamples of patches (patches of "
        "one slide are not independent, so true intervals are wider)."
    )


# --------------------------------------------------------------------------- confusion matrix


def clicked_cell(points: list[dict]) -> str | None:
    """The confusion cell a Plotly click selected, from st.plotly_chart's selection points.

    The matrix is drawn as one scatter trace of four markers in CELLS order, so a point's index
    names its cell; None when nothing (or something else) was clicked.
    """
    names = list(CELLS)
    for point in points:
        index = point.get("point_index", point.get("point_number"))
        if isinstance(index, int) and 0 <= index < len(names):
            return names[index]
    return None


def _matrix_clicks() -> list[dict]:
    """The points selected on the matrix chart, as the browser reported them for this run."""
    state = st.session_state.get(MATRIX_KEY) or {}
    return list((state.get("selection") or {}).get("points") or [])


def _follow_click(cell: str | None) -> None:
    """A new click on the matrix selects that cell in the radio below (drawn after the chart).

    A click stays in the chart's selection on later reruns, so only a change is followed: choosing
    another cell with the radio afterwards is not undone by the old click.
    """
    if cell is not None and cell != st.session_state.get(CLICK_KEY):
        st.session_state[CELL_KEY] = cell
    st.session_state[CLICK_KEY] = cell


def confusion_matrix(metrics: dict, threshold: float) -> None:
    """The clickable 2x2 matrix and its counts."""
    (tn, fp), (fn, tp) = metrics["confusion"]
    counts = [tn, fp, fn, tp]  # CELLS order
    st.subheader("Confusion matrix")
    st.caption("Click a cell to see its patches.")
    _follow_click(clicked_cell(_matrix_clicks()))  # before drawing, so the outline shows the new cell
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


def cell_patches(interpretation: Interpretation, threshold: float, lookup) -> None:
    """The most confident patches of the chosen cell (read through `lookup` when there is one) and
    their table."""
    st.subheader("Patches in one cell")
    cell = st.radio(
        "Cell",
        list(CELLS),
        format_func=lambda c: f"{c} · {CELL_NAMES[c]}",
        horizontal=True,
        index=list(CELLS).index(DEFAULT_CELL),
        key=CELL_KEY,
    )
    rows = interpretation.cell(cell, threshold)
    st.caption(f"{len(rows):,} patches; the {min(CELL_PATCHES, len(rows))} most confident shown.")
    shown = rows.head(CELL_PATCHES)
    if lookup is not None and len(shown):
        patches, found, missing = lookup.read(shown["id"].tolist())
        prob_of = dict(zip(shown["id"], shown["prob"], strict=True))
        patch_grid(list(patches), [f"p={prob_of[i]:.3f} · {short_id(i)}" for i in found], columns=6)
        if missing:
            st.caption(
                f"{len(missing)} patch(es) could not be read: " + "; ".join(list(missing.values())[:3])
            )
    with st.expander("Table of this cell"):
        st.dataframe(shown[["id", "label", "prob", "confidence"]], hide_index=True, width="stretch")


# --------------------------------------------------------------------------- curves and scores


def curve_charts(found: Curves, metrics: dict, threshold: float, prevalence: float) -> None:
    """ROC and precision-recall side by side, with the current threshold marked."""
    roc_column, pr_column = st.columns(2)
    roc_column.plotly_chart(roc_figure(found.roc, metrics, threshold), width="stretch", key="roc")
    pr_column.plotly_chart(pr_figure(found.pr, metrics, threshold, prevalence), width="stretch", key="pr")


def score_charts(interpretation: Interpretation, found: Curves, threshold: float, note: str | None) -> None:
    """The scores per true class and the reliability diagram, with the model's calibration `note`."""
    hist_column, calibration_column = st.columns(2)
    with hist_column:
        log_scale = st.toggle("Log count axis", False, key="hist_log")
        figure = scores_histogram(interpretation.labels, interpretation.probs, threshold, log_scale=log_scale)
        st.plotly_chart(figure, width="stretch", key="histogram")
    with calibration_column:
        figure = reliability_figure(found.reliability, len(interpretation), threshold)
        st.plotly_chart(figure, width="stretch", key="reliability")
        if note:
            st.caption(note)
