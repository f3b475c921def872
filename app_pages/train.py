"""Train: configure and start a job, watch it live, stop it, compare runs.

The job runs in its own process (core.training.launch); this page only reads its files, refreshed
by a fragment every few seconds, so reruns and browser reloads never disturb training.
"""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from app_pages.shared import DATASET_KEY, MODEL_KEY, extra_roots, render_sidebar
from core.augment import AugmentConfig
from core.constants import SPLIT_WARNING
from core.errors import PatchLensError, RunError
from core.models import ARCHITECTURES, DEFAULT_ARCHITECTURE
from core.runs import (
    active_run,
    curves_long,
    delete_run,
    list_runs,
    read_metrics,
    read_status,
    request_stop,
)
from core.settings import check_allowed

render_sidebar()

WATCHED_KEY = "watched_run"
REFRESH_SECONDS = 2.0

st.title("🏋️ Train")
st.caption(SPLIT_WARNING)


def curves_figure(curves: pd.DataFrame, colour: str = "split"):
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


def show_run(run_dir: Path) -> None:
    """Status, progress and live curves of one run (the running job or the last one started here)."""
    try:
        status = read_status(run_dir)
    except RunError as error:
        st.warning(str(error))
        st.session_state.pop(WATCHED_KEY, None)
        return
    state = status.get("state", "failed")
    progress = status.get("progress") or {}
    header = st.columns([3, 1])
    header[0].markdown(f"**{run_dir.name}** — {state} · {status.get('phase', '')}")
    if state in ("queued", "running"):
        if header[1].button("Stop", type="primary", key=f"stop-{run_dir.name}"):
            request_stop(run_dir)
            st.toast("Stop requested: the job stops after its current batch and keeps its best checkpoint.")
        epochs, steps = progress.get("epochs") or 1, progress.get("steps") or 1
        done = ((progress.get("epoch", 1) or 1) - 1 + progress.get("step", 0) / steps) / epochs
        text = (
            f"epoch {progress.get('epoch', 0)}/{epochs} · step {progress.get('step', 0)}/{steps} · "
            f"{progress.get('patches_per_s', 0):.0f} patches/s · ETA "
            f"{(progress.get('eta_s') or 0) / 60:.1f} min"
        )
        st.progress(min(max(done, 0.0), 1.0), text=text)
    elif state == "failed":
        st.error(f"The job failed: {status.get('error')}")
    elif state == "stopped":
        st.warning(f"Stopped ({status.get('note') or 'by the user'}); the best checkpoint is kept.")
    else:
        st.success(
            f"Finished in {status.get('duration_s', 0) / 60:.1f} min — best val AUC "
            f"{(status.get('best') or {}).get('val_auc', float('nan')):.4f} at epoch "
            f"{(status.get('best') or {}).get('epoch', '?')}."
        )
    for note in status.get("notes") or []:
        st.caption(note)
    curves = curves_long(read_metrics(run_dir))
    if curves.empty:
        st.caption("Waiting for the first batches…")
    else:
        st.plotly_chart(curves_figure(curves), width="stretch", key=f"live-{run_dir.name}")


@st.fragment(run_every=REFRESH_SECONDS)
def live_panel() -> None:
    running = active_run()
    if running is not None:
        st.session_state[WATCHED_KEY] = str(running)
    watched = st.session_state.get(WATCHED_KEY)
    if watched is None:
        st.info("No job is running. Configure one below.")
        return
    show_run(Path(watched))


st.subheader("Current job")
live_panel()

st.subheader("New training job")
with st.form("train_config"):
    data_text = st.text_area(
        "Training dataset(s), one path a line",
        value=st.session_state[DATASET_KEY],
        key="train_data",
        help="Any supported layout. Each is converted once into an HDF5 cache in the workspace.",
    )
    columns = st.columns(3)
    val_mode = columns[0].radio("Validation", ["hold out a fraction", "a separate dataset"])
    val_fraction = columns[1].slider("Held-out fraction", 0.05, 0.5, 0.2, 0.05)
    val_path = columns[2].text_input("Validation dataset path", help="Its ids are excluded from training.")
    columns = st.columns(4)
    architecture = columns[0].selectbox(
        "Architecture",
        list(ARCHITECTURES),
        index=list(ARCHITECTURES).index(DEFAULT_ARCHITECTURE),
        key="arch",
        help="\n\n".join(f"**{a.name}**: {a.description}" for a in ARCHITECTURES.values()),
    )
    epochs = columns[1].number_input("Epochs", 1, 500, 10, key="epochs")
    batch_size = columns[2].select_slider("Batch size", [16, 32, 64, 128, 256], 64, key="batch_size")
    learning_rate = columns[3].select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], 1e-3)
    columns = st.columns(4)
    schedule = columns[0].selectbox(
        "Schedule", ["cosine", "constant"], help="Cosine decays to 2 % over all epochs."
    )
    patience = columns[1].number_input("Early stopping patience (0 = off)", 0, 100, 0)
    seed = columns[2].number_input("Seed", 0, 2**31 - 1, 0, help="Same seed + same data → same metrics.")
    max_minutes = columns[3].number_input("Time budget, minutes (0 = none)", 0.0, 10000.0, 0.0)
    columns = st.columns(4)
    dihedral = columns[0].checkbox("Flips + 90° turns", True)
    jitter = columns[1].slider(
        "Colour jitter strength",
        0.0,
        2.0,
        1.0,
        0.25,
        help="Brightness/contrast/saturation/hue, standing in for stain variation.",
    )
    hed = columns[2].slider("HED stain jitter", 0.0, 0.1, 0.0, 0.01)
    class_weighting = columns[3].checkbox("Class weighting", False)
    limit = st.number_input("Use at most this many training patches (0 = all)", 0, 10_000_000, 0)
    submitted = st.form_submit_button("Start training", type="primary")

if submitted:
    from core.training import TrainConfig, launch

    try:
        paths = [str(check_allowed(line, extra_roots())) for line in data_text.splitlines() if line.strip()]
        validation = None
        if val_mode == "a separate dataset":
            validation = str(check_allowed(val_path, extra_roots()))
        config = TrainConfig(
            data=paths,
            val_data=validation,
            val_fraction=val_fraction,
            architecture=architecture,
            epochs=int(epochs),
            batch_size=int(batch_size),
            learning_rate=float(learning_rate),
            schedule=schedule,
            early_stopping_patience=int(patience),
            class_weighting=class_weighting,
            seed=int(seed),
            max_minutes=float(max_minutes) or None,
            limit=int(limit) or None,
            augment=AugmentConfig.with_strength(jitter, dihedral=dihedral, hed=hed),
        )
        run_dir = launch(config)
    except PatchLensError as error:
        st.error(str(error))
    else:
        st.session_state[WATCHED_KEY] = str(run_dir)
        st.success(f"Started {run_dir.name}. Its curves appear above as it trains.")
        st.rerun()

st.subheader("Runs")
runs = list_runs()
if not runs:
    st.caption("No runs yet in this workspace.")
    st.stop()
table = pd.DataFrame(
    [
        {
            "run": r.name,
            "status": r.state,
            "architecture": r.architecture,
            "data": r.data,
            "epochs": f"{r.epochs_done}/{r.epochs}",
            "best val AUC": None if r.best_val_auc is None else round(r.best_val_auc, 4),
            "best val accuracy": None if r.best_val_accuracy is None else round(r.best_val_accuracy, 4),
            "duration (min)": None if r.duration_s is None else round(r.duration_s / 60, 1),
        }
        for r in runs
    ]
)
selection = st.dataframe(
    table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="runs_table"
)
chosen = [runs[i] for i in selection.selection.rows] if selection and selection.selection else []
if not chosen:
    st.caption("Select runs in the table to compare their curves, make one the active model, or delete it.")
else:
    curves = pd.concat([curves_long(read_metrics(r.path), r.name) for r in chosen], ignore_index=True)
    curves = curves[curves["split"] != "train (running)"]
    if not curves.empty:
        st.plotly_chart(curves_figure(curves, colour="run"), width="stretch", key="compare")
    actions = st.columns(3)
    target = chosen[-1]
    if actions[0].button(f"Make {target.name} the active model", disabled=not target.has_model):
        st.session_state[MODEL_KEY] = str(target.model_path)
        st.success(f"{target.name} is now the active model for Evaluate, Predict and Mistakes.")
    resumable = target.state in ("failed", "stopped") and (target.path / "best.keras").is_file()
    if actions[2].button(
        f"Resume {target.name}",
        disabled=not resumable,
        help="Continue a failed or stopped run from its best checkpoint, in a new run.",
    ):
        from core.training import launch, resume_config

        try:
            run_dir = launch(resume_config(target.path))
        except PatchLensError as error:
            st.error(str(error))
        else:
            st.session_state[WATCHED_KEY] = str(run_dir)
            st.rerun()
    if actions[1].button(f"Delete {target.name}"):
        try:
            delete_run(target.path)
        except PatchLensError as error:
            st.error(str(error))
        else:
            if st.session_state.get(WATCHED_KEY) == str(target.path):
                st.session_state.pop(WATCHED_KEY, None)
            st.rerun()
