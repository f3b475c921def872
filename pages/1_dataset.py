"""Dataset: browse and check any dataset — counts, label balance, a patch grid, input quality,
colour statistics, and the problems found while reading it.

The header cards are filled last, after the grid and the check have run, so they count every problem
known in this run: the ones found at open (small datasets are decoded whole, see
core.data.dataset.open_checked), on the grid page just read, and by "Check every file". The tabs keep
their state (key), so the user stays on the tab they were on; only the open tab's content runs.
Widget keys carry the dataset's identity, so a page number or a chosen patch never carries over to
another dataset. Input quality (core.data.quality flags) is counted on the Quality tab and filters the
grid; it is measured once per dataset content (core.data.stats.dataset_quality, cached).
"""

import streamlit as st

from ui.dataset_grid import patch_grid
from ui.dataset_summary import colour, header_cards, label_balance, problems, quality_summary
from ui.frame import page
from ui.shared import DATASET_KEY, active_dataset, dataset_label, from_url, one_of, to_url
from ui.text import md_code, md_escape

TABS = ["Label balance", "Patches", "Quality", "Colour", "Problems"]
TAB_KEY = "dataset_tab"
URL_TAB = "tab"  # the open tab lives in the URL too, so a reload or a copied link keeps it


with page("Dataset"):
    dataset = active_dataset()
    if dataset is None:
        st.info("Open another dataset from the sidebar.")
        st.stop()

    path = st.session_state[DATASET_KEY]
    st.caption(f"{md_escape(dataset_label(path))} — {md_code(path)}")
    header = st.container()  # filled last: it counts what the tabs below found in this run
    from_url(TAB_KEY, URL_TAB, one_of(TABS))
    overview, grid_tab, quality_tab, colour_tab, problems_tab = st.tabs(TABS, key=TAB_KEY, on_change="rerun")
    to_url(URL_TAB, None if st.session_state.get(TAB_KEY, TABS[0]) == TABS[0] else st.session_state[TAB_KEY])
    if overview.open:
        with overview:
            label_balance(dataset)
    if grid_tab.open:
        with grid_tab:
            patch_grid(dataset, path)
    if quality_tab.open:
        with quality_tab:
            quality_summary(dataset, path)
    if colour_tab.open:
        with colour_tab:
            colour(dataset, path)
    if problems_tab.open:
        with problems_tab:
            problems(dataset)
    with header:
        header_cards(dataset)
