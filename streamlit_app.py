"""PatchLens: train, check and explain histopathology patch classifiers.

The entry point only wires pages; every page is a short script in pages/ that starts by drawing
the shared sidebar (pages.shared.render_sidebar), and all logic lives in core/. TensorFlow is imported only by the pages that run a model.
"""

from pathlib import Path

import streamlit as st

from pages.shared import init_state

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


st.navigation(PAGES).run()
