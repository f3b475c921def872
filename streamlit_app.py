"""PatchLens: train, check and explain histopathology patch classifiers.

The entry point only wires pages and the sidebar; every page is a short script in pages/ and all
logic lives in core/. TensorFlow is imported only by the pages that run a model.
"""

from pathlib import Path

import streamlit as st

from core.runs import list_runs
from core.settings import BASELINE_MODEL, DATA_ROOTS_ENV, data_roots
from pages.shared import (
    DATASET_KEY,
    MODEL_KEY,
    ROOTS_KEY,
    dataset_label,
    init_state,
    model_label,
    open_dataset_from_user,
)

st.set_page_config(page_title="PatchLens", page_icon="🔬", layout="wide")
init_state()

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon="🗂️"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
]
for optional in (("evaluate", "Evaluate", "📈"), ("predict", "Predict", "🔍"), ("mistakes", "Mistakes", "⚠️")):
    if (Path(__file__).parent / "pages" / f"{optional[0]}.py").exists():
        PAGES.append(st.Page(f"pages/{optional[0]}.py", title=optional[1], icon=optional[2]))


def sidebar() -> None:
    with st.sidebar:
        st.markdown("### Active dataset")
        st.caption(dataset_label(st.session_state[DATASET_KEY]))
        with st.form("open_dataset", border=False):
            text = st.text_input(
                "Open a dataset by path",
                placeholder="/path/to/kaggle-folder, PCam .h5 folder, or class folders",
                help="Kaggle folder of .tif + train_labels.csv, PCam HDF5 files, class folders 0/ and 1/, "
                "or a cache .h5. Only paths inside the data roots can be opened.",
            )
            if st.form_submit_button("Open") and text:
                if open_dataset_from_user(text) is not None:
                    st.success(f"Opened {text}")

        st.markdown("### Active model")
        options = {}
        if BASELINE_MODEL.exists():
            options[str(BASELINE_MODEL)] = "bundled baseline"
        for run in list_runs():
            if run.has_model:
                model = run.path / ("model.keras" if (run.path / "model.keras").exists() else "best.keras")
                options[str(model)] = f"run {run.name}" + ("" if run.state == "finished" else f" ({run.state})")
        current = st.session_state.get(MODEL_KEY)
        if current and current not in options:
            options[current] = model_label(current)
        if options:
            keys = list(options)
            chosen = st.selectbox(
                "Model",
                keys,
                index=keys.index(current) if current in keys else 0,
                format_func=options.get,
                label_visibility="collapsed",
            )
            st.session_state[MODEL_KEY] = chosen
        else:
            st.caption("No model yet: train one on the Train page.")

        with st.expander("Settings: data roots"):
            st.caption(f"Datasets may be opened from these folders (extend with {DATA_ROOTS_ENV}):")
            for root in data_roots(st.session_state[ROOTS_KEY]):
                st.code(str(root), language=None)
            new_root = st.text_input("Add a data root for this session", key="new_root")
            if st.button("Add root") and new_root.strip():
                if Path(new_root).expanduser().is_dir():
                    st.session_state[ROOTS_KEY] = [*st.session_state[ROOTS_KEY], new_root.strip()]
                    st.rerun()
                else:
                    st.error(f"{new_root} is not a folder.")


sidebar()
st.navigation(PAGES).run()
