"""Home: what PatchLens is, what is loaded, what is running, where to go next. No TensorFlow here."""

import streamlit as st

from app_pages.shared import (
    DATASET_KEY,
    MODEL_KEY,
    active_dataset,
    dataset_label,
    model_label,
    render_sidebar,
)
from core.constants import LABEL_MEANING, SPLIT_WARNING
from core.errors import RunError
from core.runs import active_run, read_json, read_status
from core.settings import BASELINE_INFO, workspace_dir

render_sidebar()

st.title("🔬 PatchLens")
st.markdown(
    "Train, check and explain classifiers of **96×96 H&E patches of lymph-node sections** "
    "(the Kaggle *Histopathologic Cancer Detection* / PatchCamelyon task). "
    f"Label meaning: {LABEL_MEANING}."
)

dataset = active_dataset()
left, middle, right = st.columns(3)
with left:
    st.subheader("Dataset")
    st.metric("Active dataset", dataset_label(st.session_state[DATASET_KEY]))
    if dataset is not None:
        summary = dataset.describe()
        st.caption(
            f"{summary['n_patches']:,} patches · layout {summary['layout']} · "
            f"{summary['n_positive']:,} tumour / {summary['n_negative']:,} normal · "
            f"{len(summary['problems'])} problems"
        )
with middle:
    st.subheader("Model")
    st.metric("Active model", model_label(st.session_state.get(MODEL_KEY)))
    info = read_json(BASELINE_INFO, {}) or {}
    if (
        st.session_state.get(MODEL_KEY)
        and model_label(st.session_state[MODEL_KEY]) == "bundled baseline"
        and info
    ):
        metrics = info.get("metrics", {})
        st.caption(
            f"Baseline: validation AUC {metrics.get('val_auc', float('nan')):.3f}, accuracy "
            f"{metrics.get('val_accuracy', float('nan')):.3f} on the bundled sample, which it never "
            "trained on. The sample shares slides with the training patches, so expect a little "
            "less on new slides."
        )
with right:
    st.subheader("Training")
    running = active_run()
    if running is None:
        st.metric("Job", "idle")
        st.caption(f"Workspace: {workspace_dir()}")
    else:
        try:
            status = read_status(running)
        except RunError:
            status = {}
        progress = status.get("progress") or {}
        st.metric("Job", running.name)
        st.caption(
            f"{status.get('state', '?')} · {status.get('phase', '')} · epoch "
            f"{progress.get('epoch', 0)}/{progress.get('epochs', '?')}"
        )

st.divider()
st.subheader("Where to go next")
st.page_link(
    "app_pages/dataset.py",
    label="Dataset: label balance, patch grid, colour statistics, broken files",
    icon="🗂️",
)
st.page_link(
    "app_pages/train.py", label="Train: start a job, watch live curves, stop it, compare runs", icon="🏋️"
)
st.page_link(
    "app_pages/evaluate.py",
    label="Evaluate: metrics, ROC/PR, calibration, confusion matrix at your threshold",
    icon="📈",
)
st.page_link(
    "app_pages/predict.py", label="Predict: drop patches for a probability and a Grad-CAM overlay", icon="🔍"
)
st.page_link(
    "app_pages/mistakes.py", label="Mistakes: false positives and negatives, most confident first", icon="⚠️"
)
st.caption(SPLIT_WARNING)
