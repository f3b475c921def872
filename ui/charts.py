"""Every Plotly figure Evaluate, Compare and Train draw, so no page builds one: the pieces (a curve, the
dotted reference line, the marker of the current threshold, the figure around them), Evaluate's ROC,
precision-recall, score histogram, reliability diagram and clickable confusion matrix, and Compare's
two models overlaid, and Train's curves. Pure functions of arrays and core.evaluate.metrics' curves; no Streamlit."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.constants import LABEL_NAMES
from core.evaluate.interpret import CELLS
from core.evaluate.metrics import PrPoints, ReliabilityCurve, RocPoints, pr_points, roc_points
from core.formatting import format_metric

REFERENCE_LINE = dict(dash="dot", color="grey")
THRESHOLD_MARKER = dict(size=13, color="#e45756", symbol="x")


def curve(x, y, name: str, *, thresholds=None, axes: tuple[str, str] = ("x", "y"), line=None) -> go.Scatter:
    """A curve; with `thresholds`, hovering a point shows its two `axes` values and its threshold."""
    hover = {}
    if thresholds is not None:
        hover = dict(
            customdata=thresholds,
            hovertemplate=f"{axes[0]} %{{x:.3f}}<br>{axes[1]} %{{y:.3f}}<br>threshold %{{customdata:.3f}}",
        )
    return go.Scatter(x=x, y=y, mode="lines", name=name, line=line, **hover)


def reference_line(name: str, y: Sequence[float] = (0, 1)) -> go.Scatter:
    """The dotted line from x = 0 to 1 (y = x by default: chance on ROC, perfect calibration)."""
    return go.Scatter(x=[0, 1], y=list(y), mode="lines", line=REFERENCE_LINE, name=name, hoverinfo="skip")


def threshold_marker(x: float, y: float, threshold: float) -> go.Scatter:
    """The cross where the current threshold puts the model on the curve."""
    return go.Scatter(
        x=[x], y=[y], mode="markers", name=f"threshold {threshold:.3f}", marker=THRESHOLD_MARKER
    )


def curve_figure(
    traces: Sequence[go.Scatter], *, title: str, x_title: str, y_title: str, **layout
) -> go.Figure:
    """A figure of `traces` with its title, axis titles and any further layout (height, margin, legend)."""
    figure = go.Figure(list(traces))
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **layout)
    return figure


# --------------------------------------------------------------------------- Evaluate's figures

CURVE_LAYOUT = dict(height=380, margin=dict(t=40, b=20))
CLASS_COLOURS = {0: "#4c78a8", 1: "#e45756"}
MODEL_COLOURS = {"A": "#4c78a8", "B": "#f58518"}
MATRIX_COLUMNS = {0: "called normal", 1: "called tumour"}
MATRIX_ROWS = {0: "normal (0)", 1: "tumour (1)"}


def roc_figure(roc: RocPoints, metrics: dict, threshold: float) -> go.Figure:
    """The ROC curve with chance and the cross where `threshold` puts the model."""
    sensitivity = metrics["sensitivity"] or 0.0
    specificity = metrics["specificity"] if metrics["specificity"] is not None else 1.0
    return curve_figure(
        [
            curve(roc.fpr, roc.tpr, "ROC", thresholds=roc.thresholds, axes=("FPR", "TPR")),
            reference_line("chance"),
            threshold_marker(1 - specificity, sensitivity, threshold),
        ],
        title=f"ROC (AUC {format_metric(roc.auc)})",
        x_title="false positive rate (1 − specificity)",
        y_title="sensitivity",
        legend=dict(x=0.55, y=0.08),
        **CURVE_LAYOUT,
    )


def pr_figure(pr: PrPoints, metrics: dict, threshold: float, prevalence: float) -> go.Figure:
    """The precision-recall curve with the prevalence line and the current threshold's cross."""
    traces = [
        curve(pr.recall, pr.precision, "PR", thresholds=pr.thresholds, axes=("recall", "precision")),
        reference_line("prevalence", y=(prevalence, prevalence)),
    ]
    if metrics["precision"] is not None:
        traces.append(threshold_marker(metrics["sensitivity"] or 0.0, metrics["precision"], threshold))
    return curve_figure(
        traces,
        title=f"Precision-recall (AP {format_metric(pr.average_precision)})",
        x_title="recall (sensitivity)",
        y_title="precision",
        legend=dict(x=0.02, y=0.08),
        **CURVE_LAYOUT,
    )


def scores_histogram(labels, probs, threshold: float, *, log_scale: bool = False) -> go.Figure:
    """The scores of each true class, overlaid, with the threshold as a dashed line."""
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
    figure.add_vline(x=threshold, line=dict(color="black", dash="dash"), annotation_text=f"{threshold:.3f}")
    figure.update_layout(
        title="Scores per true class", barmode="overlay", xaxis_title="P(tumour)", yaxis_title="patches",
        height=360, margin=dict(t=40, b=20),
    )  # fmt: skip
    if log_scale:
        figure.update_yaxes(type="log")
    return figure


def reliability_figure(calibration: ReliabilityCurve, n_patches: int, threshold: float) -> go.Figure:
    """Observed tumour fraction against the mean predicted probability per bin, over each bin's share."""
    filled = calibration.count > 0
    centres = (calibration.bin_edges[:-1] + calibration.bin_edges[1:]) / 2
    figure = go.Figure()
    figure.add_trace(go.Bar(
        x=centres[filled], y=calibration.count[filled] / n_patches, name="share of patches", yaxis="y2",
        marker_color="lightgrey", opacity=0.5, width=0.09,
    ))  # fmt: skip
    figure.add_trace(reference_line("perfect calibration"))
    figure.add_trace(go.Scatter(
        x=calibration.mean_predicted[filled], y=calibration.observed_fraction[filled], mode="lines+markers",
        name="model", marker_color="#4c78a8", customdata=calibration.count[filled],
        hovertemplate="mean P %{x:.3f}<br>tumour fraction %{y:.3f}<br>%{customdata} patches",
    ))  # fmt: skip
    figure.add_vline(x=threshold, line=dict(color="black", dash="dash"))
    figure.update_layout(
        title=f"Reliability (ECE {calibration.ece:.3f})", xaxis=dict(title="mean predicted P(tumour)", range=[0, 1]),
        yaxis=dict(title="observed tumour fraction", range=[0, 1]),
        yaxis2=dict(overlaying="y", side="right", range=[0, 1], showgrid=False, title="share of patches"),
        height=360, margin=dict(t=40, b=20), legend=dict(x=0.02, y=0.98),
    )  # fmt: skip
    return figure


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


# --------------------------------------------------------------------------- Compare's figures


def two_model_figures(labels, probs: dict[str, object], names: dict[str, str]) -> tuple[go.Figure, go.Figure]:
    """Overlaid ROC and precision-recall figures of models "A" and "B" (`probs` and `names` by model)."""
    roc_traces, pr_traces = [], []
    for model in ("A", "B"):
        roc, pr = roc_points(labels, probs[model]), pr_points(labels, probs[model])
        line = dict(color=MODEL_COLOURS[model])
        name = f"{model}: {names[model]}"
        roc_traces.append(curve(roc.fpr, roc.tpr, f"{name} (AUC {roc.auc:.3f})", line=line))
        pr_traces.append(curve(pr.recall, pr.precision, f"{name} (AP {pr.average_precision:.3f})", line=line))
    layout = dict(
        height=420, margin=dict(t=40, b=20), legend=dict(orientation="h", x=0, y=-0.2)
    )  # off the curves
    roc_figure = curve_figure(
        [*roc_traces, reference_line("chance")], title="ROC", x_title="false positive rate",
        y_title="sensitivity", **layout,
    )  # fmt: skip
    pr_figure = curve_figure(
        pr_traces, title="Precision-recall", x_title="recall", y_title="precision", **layout
    )
    return roc_figure, pr_figure


# --------------------------------------------------------------------------- Train's figures


def training_curves_figure(curves, colour: str = "split") -> go.Figure:
    """Training curves in long form (core.train.views.curves_long), one facet per metric, a line per
    `colour` value (split for one run, run for several, whose splits are then dashed)."""
    import plotly.express as px

    figure = px.line(
        curves,
        x="epoch",
        y="value",
        color=colour,
        facet_col="metric",
        markers=True,
        line_dash="split" if colour != "split" else None,
    )
    figure.update_yaxes(matches=None, showticklabels=True)
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    figure.update_layout(height=340, margin=dict(t=30, b=20), legend_title_text="")
    return figure
