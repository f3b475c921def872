"""PatchLens: train, check and explain histopathology patch classifiers. This script is the Home page.

`streamlit run streamlit_app.py` serves it in Streamlit's classic multipage mode: this script is Home
(what PatchLens is, what is loaded, what is running, where to go next) and every script in pages/ is a
page. Pages are thin: shared widgets live in ui/, all logic in core/. No TensorFlow here; it is warmed
in the background once a page has been drawn (ui.warmup)."""

import streamlit as st

from core.constants import LABEL_MEANING, SPLIT_WARNING
from core.errors import RunError
from core.settings import BASELINE_INFO, workspace_dir
from core.train.runs import active_run, read_json, read_status
from ui.frame import PAGES, page
from ui.shared import (
    DATASET_KEY,
    MODEL_KEY,
    active_dataset,
    dataset_label,
    model_label,
)
from ui.text import md_escape

with page("Home"):
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
        st.metric("Active dataset", md_escape(dataset_label(st.session_state[DATASET_KEY])))
        if dataset is not None:
            summary = dataset.describe()
            st.caption(
                f"{summary['n_patches']:,} patches · layout {summary['layout']} · "
                f"{summary['n_positive']:,} tumour / {summary['n_negative']:,} normal · "
                f"{len(summary['problems'])} problems"
            )
    with middle:
        st.subheader("Model")
        st.metric("Active model", md_escape(model_label(st.session_state.get(MODEL_KEY))))
        info = read_json(BASELINE_INFO, {}) or {}
        if (
            st.session_state.get(MODEL_KEY)
            and model_label(st.session_state[MODEL_KEY]) == "bundled baseline"
            and info
        ):
            metrics, proxy = info.get("metrics", {}), info.get("unseen_slide_proxy")
            text = (
                f"Baseline: AUC {metrics.get('val_auc', float('nan')):.3f}, accuracy "
                f"{metrics.get('val_accuracy', float('nan')):.3f} on the bundled sample, which it never "
                "trained on"
            )
            if proxy:
                text += (
                    f"; its recipe, trained without them, scored AUC {proxy['auc']:.3f}, accuracy "
                    f"{proxy['accuracy']:.3f} on {proxy['n']:,} patches of slides it never saw (see models/README.md)"
                )
            st.caption(text + ".")
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
            st.metric("Job", md_escape(running.name))
            st.caption(
                f"{status.get('state', '?')} · {status.get('phase') or ''} · epoch "
                f"{progress.get('epoch', 0)}/{progress.get('epochs', '?')}"
            )

    st.divider()
    st.subheader("Where to go next")
    for entry in PAGES[1:]:
        st.page_link(entry.script, label=f"{entry.title}: {entry.blurb}", icon=entry.icon)
    st.caption(SPLIT_WARNING)
