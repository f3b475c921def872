"""The frame every page is drawn in, and the app's navigation (one home for the list of pages).

The app runs in Streamlit's classic multipage mode: `streamlit_app.py` is Home and each script in
`pages/` is a page, so a deep link (/train) runs that page directly even as the server's first
session. Each page wraps its body in `with page("Train"):`, which sets the page config, fills the
session state, draws the navigation and the shared sidebar, and once the body has been drawn (also
after st.stop() or when the user left mid-run) warms TensorFlow and the active model in the
background (ui.warmup).
Streamlit's own page list is switched off (.streamlit/config.toml `showSidebarNavigation = false`):
it would name pages after their file names; the app draws its own links with titles and icons.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import streamlit as st

from ui.boundary import error_boundary
from ui.keras_session import keep_keras_session
from ui.notices import begin_run
from ui.shared import active_model_path, render_sidebar
from ui.warmup import start_warmup

APP_TITLE = "PatchLens"

keep_keras_session()  # every page imports this module: no gc.collect() after each rerun (why there)


class PageEntry(NamedTuple):
    script: str  # relative to the project folder, as st.page_link and AppTest.switch_page take it
    title: str
    icon: str
    blurb: str  # what the page is for, in Home's "Where to go next"
    uses_model: bool = False  # the page scores, explains or describes with the active model


HOME = PageEntry("streamlit_app.py", "Home", "🏠", "what is loaded, what is running, where to go next")
PAGES = (
    HOME,
    PageEntry(
        "pages/1_dataset.py",
        "Dataset",
        "🗂️",
        "label balance, patch grid, colour statistics, input quality, broken files",
    ),
    PageEntry("pages/2_train.py", "Train", "🏋️", "start a job, watch live curves, stop it, compare runs"),
    PageEntry(
        "pages/3_evaluate.py",
        "Evaluate",
        "📈",
        "metrics, ROC/PR, calibration, confusion matrix at your threshold",
        uses_model=True,
    ),
    PageEntry(
        "pages/4_predict.py",
        "Predict",
        "🔍",
        "drop patches for a probability and a Grad-CAM overlay",
        uses_model=True,
    ),
    PageEntry(
        "pages/5_mistakes.py",
        "Mistakes",
        "⚠️",
        "false positives and negatives, most confident first",
        uses_model=True,
    ),
    PageEntry(
        "pages/6_feature_map.py",
        "Feature map",
        "🗺️",
        "the model's features in 2-D: select points to see their patches, and any patch's nearest neighbours",
        uses_model=True,
    ),
    PageEntry(
        "pages/7_label_issues.py",
        "Label issues",
        "🏷️",
        "patches whose label is likely wrong (confident learning), most suspect first",
        uses_model=True,
    ),
    PageEntry(
        "pages/8_compare.py",
        "Compare",
        "⚖️",
        "two models on one dataset: ROC/PR, DeLong and McNemar tests, disagreements",
        uses_model=True,
    ),
    PageEntry(
        "pages/9_region.py",
        "Region",
        "🔬",
        "a tumour-probability heatmap over a region image or a whole slide",
        uses_model=True,
    ),
    PageEntry(
        "pages/10_slides.py",
        "Slides",
        "🗂️",
        "a cohort of slides: slide scores, slide-level metrics, QuPath annotations",
        uses_model=True,
    ),
)


def model_pages() -> str:
    """The titles of the pages that use the active model, as a sentence ('Evaluate, Predict, … and Region')."""
    titles = [entry.title for entry in PAGES if entry.uses_model]
    return ", ".join(titles[:-1]) + f" and {titles[-1]}"


@contextmanager
def page(title: str) -> Iterator[None]:
    """Draw one page: config, navigation and sidebar first, the body inside, the warm-up after."""
    st.set_page_config(page_title=APP_TITLE, page_icon="🔬", layout="wide")
    begin_run()  # messages shown before the user acted again are dropped here
    with st.sidebar:
        for entry in PAGES:
            st.page_link(entry.script, label=entry.title, icon=entry.icon)
    render_sidebar()
    entry = next(entry for entry in PAGES if entry.title == title)
    if entry != HOME:  # Home draws its own title, the app's name
        st.title(f"{entry.icon} {entry.title}")
    # Read before the body: once a run is stopped (st.stop(), or the user leaving mid-run) every
    # session-state read raises StopException again, so `finally` must not touch st.session_state.
    model_path = active_model_path()
    try:
        with error_boundary():  # a bug in a page's body: a short message, its details in an expander
            yield
    finally:  # also after st.stop() or an interrupted run: warm TensorFlow and the model now
        start_warmup(model_path)
