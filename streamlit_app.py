"""PatchLens: train, check and explain histopathology patch classifiers.

The entry point only wires pages; every page is a short script in app_pages/ that starts by drawing
the shared sidebar (app_pages.shared.render_sidebar), and all logic lives in core/. TensorFlow is
imported only by the pages that run a model, and warmed in the background once the first page has
been drawn (app_pages.warmup), so the first prediction does not wait for it. The folder is not
called `pages/`: next to the entry script that name switches Streamlit into its legacy folder mode,
where a deep link run before any visit of `/` skips this file and lists every module of the folder
as a page.
"""

import streamlit as st

from app_pages.shared import active_model_path, init_state
from app_pages.warmup import start_warmup

st.set_page_config(page_title="PatchLens", page_icon="🔬", layout="wide")
init_state()

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("app_pages/dataset.py", title="Dataset", icon="🗂️"),
    st.Page("app_pages/train.py", title="Train", icon="🏋️"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon="📈"),
    st.Page("app_pages/predict.py", title="Predict", icon="🔍"),
    st.Page("app_pages/mistakes.py", title="Mistakes", icon="⚠️"),
]

try:
    st.navigation(PAGES).run()
finally:  # also after st.stop(): the page has been drawn; warm TensorFlow and the model now
    start_warmup(active_model_path())
