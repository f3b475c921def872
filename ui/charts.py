"""Plotly pieces of the ROC and precision-recall figures that Evaluate and Compare draw: a curve, the
dotted reference line, the marker of the current threshold and the figure around them."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

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
