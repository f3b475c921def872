"""The uncertainty of each prediction on the pages (core.evaluate.uncertainty owns what it means).

- Predict: a badge next to the quality flags on a patch whose 8 views disagree (with TTA ticked);
- Mistakes: a filter, certain / uncertain;
- Feature map: the `uncertainty` colour, from the TTA predictions of the same model and dataset;
- Evaluate: the risk-coverage curve (with TTA ticked).

Pages call one function each; without TTA predictions every place says so instead of guessing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import PatchLensError
from core.evaluate.uncertainty import (
    NO_SPREAD_NOTE,
    SPREAD_COLUMN,
    UNCERTAIN_SPREAD,
    certain_vs_rest,
    certainty_word,
    has_spread,
    risk_at_coverage,
    risk_coverage,
    uncertain_mask,
)
from ui.charts import curve, curve_figure

UNCERTAIN_HELP = (
    f"The 8 flipped/rotated views of this patch disagree (their probabilities' standard deviation is "
    f"at least {UNCERTAIN_SPREAD}): the model is unsure of it. On slides it never saw, the bundled model is "
    "wrong far more often on such patches (BENCHMARKS.md, 'Uncertainty per prediction')."
)
CERTAINTY_FILTERS = ("all", "uncertain", "certain")
CERTAINTY_KEY = "mistakes_certainty"
UNCERTAINTY_COLUMN = "uncertainty"  # the feature map's colour-by column (core.diagnose.projection)
COVERAGE_MARKS = (0.8, 0.9)


# --------------------------------------------------------------------------- Predict


def spread_note(tta: bool) -> None:
    """Without TTA, a caption saying how to see the uncertainty (the spread comes with the TTA pass)."""
    if not tta:
        st.caption("Tick test-time augmentation to see how sure the model is of each patch (uncertainty).")


def uncertainty_badge(container, spreads: np.ndarray | None, k: int) -> None:
    """The 'uncertain' badge of upload `k` when its views disagree (nothing when they agree or without TTA)."""
    if spreads is None:
        return
    if certainty_word(float(spreads[k])) == "uncertain":
        container.badge("uncertain", icon="❓", color="violet", help=UNCERTAIN_HELP)
    container.caption(f"spread of the 8 views: {float(spreads[k]):.3f}")


# --------------------------------------------------------------------------- Mistakes


def certainty_filter(rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """`rows` (with an `id` column) kept by the certainty radio; unfiltered, with a note, when the
    predictions carry no spread."""
    if not has_spread(predictions):
        st.caption(NO_SPREAD_NOTE)
        return rows
    shown = st.radio("Certainty", CERTAINTY_FILTERS, horizontal=True, key=CERTAINTY_KEY, help=UNCERTAIN_HELP)
    if shown == "all":
        return rows
    spread = predictions.set_index("id")[SPREAD_COLUMN].reindex(rows["id"]).to_numpy()
    uncertain = uncertain_mask(spread)
    return rows[uncertain if shown == "uncertain" else ~uncertain & np.isfinite(spread)]


# --------------------------------------------------------------------------- Feature map


def _tta_spreads(model_path: str, dataset) -> pd.Series | None:
    """The spread per patch id from the cached TTA predictions of this model on this dataset, if any."""
    from core.evaluate.predictions import prediction_cache_path, read_cached_predictions

    path = prediction_cache_path(model_path, dataset, tta=True)
    if not path.is_file():
        return None
    try:
        cached = read_cached_predictions(path, dataset)
    except PatchLensError:
        return None
    return cached.set_index("id")[SPREAD_COLUMN] if has_spread(cached) else None


def with_uncertainty(frame: pd.DataFrame, model_path: str, dataset) -> pd.DataFrame:
    """The feature map's points with an `uncertainty` column: certain / uncertain from the TTA
    predictions of the same model and dataset, 'unknown' (and a note) when there are none."""
    spreads = _tta_spreads(model_path, dataset)
    if spreads is None:
        if st.session_state.get("feature_map_colour") == UNCERTAINTY_COLUMN:
            st.caption(NO_SPREAD_NOTE + " (Evaluate with TTA ticked computes them for this dataset.)")
        return frame.assign(**{UNCERTAINTY_COLUMN: "unknown"})
    words = [certainty_word(s) for s in spreads.reindex(frame["id"]).to_numpy()]
    return frame.assign(**{UNCERTAINTY_COLUMN: words})


# --------------------------------------------------------------------------- Evaluate


def risk_coverage_section(predictions: pd.DataFrame, threshold: float) -> None:
    """Evaluate's risk-coverage curve: the error rate when the most uncertain patches are set aside."""
    st.subheader("Risk against coverage (uncertainty)")
    known = predictions[predictions["label"].notna()]
    if not has_spread(known):
        st.caption(NO_SPREAD_NOTE)
        return
    labels, probs, spread = (known[c].to_numpy() for c in ("label", "prob", SPREAD_COLUMN))
    curve_points = risk_coverage(labels, probs, spread, threshold=threshold)
    summary = certain_vs_rest(labels, probs, spread, threshold=threshold)
    figure = curve_figure(
        [curve(curve_points["coverage"], curve_points["risk"], "abstain on the largest spread first")],
        title="Error rate of the patches kept", x_title="coverage (share of patches kept)",
        y_title=f"error rate at {threshold:.3f}", height=340, margin=dict(t=40, b=20),
    )  # fmt: skip
    figure.add_vline(x=summary["n_certain"] / len(labels), line=dict(color="black", dash="dash"))
    st.plotly_chart(figure, width="stretch", key="risk_coverage")
    st.caption(_summary_text(summary, curve_points))


def _summary_text(summary: dict, curve_points: pd.DataFrame) -> str:
    """The certain/uncertain split and the risk at a few coverages, in words."""

    def percent(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f} %"

    kept = "; ".join(
        f"keeping {int(100 * c)} %: error {percent(risk_at_coverage(curve_points, c))}"
        for c in COVERAGE_MARKS
    )
    return (
        f"Certain (spread < {summary['cut']}, dashed line): {summary['n_certain']:,} patches, accuracy "
        f"{percent(summary['accuracy_certain'])}; uncertain: {summary['n_uncertain']:,}, accuracy "
        f"{percent(summary['accuracy_uncertain'])}. {kept}; all: error {percent(1 - summary['accuracy_all'])}."
    )
