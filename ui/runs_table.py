"""The Train page's runs: a table of every run in the workspace (status, warnings, epochs, best
validation metrics, duration), the runs chosen below it with their curves overlaid, and the actions
on the last one chosen (ui.run_actions).

Session state key:
  train_selected_runs   names of the runs chosen below the table (names, so new runs never shift it)
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.train.runs import RunSummary, list_runs, read_metrics
from core.train.views import RUNNING, WITHIN_EPOCHS, curves_long
from ui.charts import training_curves_figure
from ui.notices import show_notices
from ui.run_actions import NOTICE_PLACE, SELECTED_KEY, confirm_panel, resume_panel, run_actions


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def epochs_cell(run: RunSummary) -> str:
    """Complete epochs of the total, in the original numbering; where a run stopped early and
    which epochs a resumed run trained itself."""
    text = f"{run.epochs_done}/{run.epochs}"
    if run.epochs_here:
        text += f", epochs {run.epochs_here[0]}–{run.epochs_here[1]} in this run"
    if run.stopped_at and run.stopped_at["step"] < run.stopped_at["steps"]:
        text += f" (stopped in epoch {run.stopped_at['epoch']} at step {run.stopped_at['step']}/{run.stopped_at['steps']})"
    return text


def warning_cell(run: RunSummary) -> str | None:
    words = [
        f"⚠️ {run.warning}" if run.warning else None,
        f"damaged: {run.problems}" if run.problems else None,
    ]
    return " · ".join(w for w in words if w) or None


def runs_table(runs: list[RunSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": r.name,
                "status": r.state,
                "warning": warning_cell(r),
                "resumed from": r.resumed_from,
                "architecture": r.architecture,
                "data": r.data,
                "epochs": epochs_cell(r),
                "best val AUC": rounded(r.best_val_auc),
                "best val accuracy": rounded(r.best_val_accuracy),
                "duration (min)": None if r.duration_s is None else round(r.duration_s / 60, 1),
            }
            for r in runs
        ]
    )


def runs_section() -> None:
    runs = {r.name: r for r in list_runs()}
    if not runs:
        show_notices(NOTICE_PLACE)
        st.caption("No runs yet in this workspace.")
        return
    st.dataframe(runs_table(list(runs.values())), hide_index=True, width="stretch", placeholder="—")
    # Runs deleted elsewhere leave the selection silently; new runs never shift it (it holds names).
    st.session_state[SELECTED_KEY] = [n for n in st.session_state.get(SELECTED_KEY, []) if n in runs]
    names = st.multiselect(
        "Choose runs",
        list(runs),
        key=SELECTED_KEY,
        placeholder="Choose runs to compare; the last one chosen is the one the buttons act on",
    )
    show_notices(NOTICE_PLACE)
    confirm_panel(runs)
    resume_panel(runs)
    if not names:
        st.caption("Choose runs to compare their curves, make one the active model, resume or delete it.")
        return
    chosen = [runs[n] for n in names]
    curves = pd.concat([curves_long(read_metrics(r.path), r.name) for r in chosen], ignore_index=True)
    curves = curves[~curves["split"].isin([RUNNING, WITHIN_EPOCHS])]  # epoch points only
    if not curves.empty:
        st.plotly_chart(training_curves_figure(curves, colour="run"), width="stretch", key="compare")
    run_actions(chosen[-1])
