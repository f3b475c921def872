"""Dataset: browse and check any dataset — counts, label balance, a patch grid, colour statistics,
and the problems found while reading it."""

import pandas as pd
import plotly.express as px
import streamlit as st

from app_pages.shared import DATASET_KEY, active_dataset, dataset_label, render_sidebar
from core.dataset_stats import channel_histograms, colour_statistics, filtered_indices, label_name, page_of
from core.errors import PatchLensError
from core.images import draw_centre_box

render_sidebar()

PAGE_SIZE = 24
GRID_COLUMNS = 8

st.title("🗂️ Dataset")
dataset = active_dataset()
if dataset is None:
    st.info("Open another dataset from the sidebar.")
    st.stop()

path = st.session_state[DATASET_KEY]
summary = dataset.describe()
st.caption(f"{dataset_label(path)} — `{path}`")

cards = st.columns(5)
cards[0].metric("Layout", summary["layout"])
cards[1].metric("Patches", f"{summary['n_patches']:,}")
cards[2].metric("Tumour (1)", f"{summary['n_positive']:,}")
cards[3].metric("Normal (0)", f"{summary['n_negative']:,}")
cards[4].metric("Problems", f"{len(summary['problems']):,}")
if not dataset.scanned:
    st.caption(
        "Files were listed, not decoded, so unreadable images are not counted yet. "
        "Use *Check every file* below to decode them all."
    )

overview, grid_tab, colour_tab, problems_tab = st.tabs(["Label balance", "Patches", "Colour", "Problems"])

with overview:
    if dataset.labels is None:
        st.info("This dataset is unlabelled: use it on the Predict page.")
    else:
        balance = pd.DataFrame(
            {
                "class": ["normal (0)", "tumour (1)"],
                "patches": [summary["n_negative"], summary["n_positive"]],
            }
        )
        figure = px.bar(
            balance,
            x="class",
            y="patches",
            color="class",
            text="patches",
            color_discrete_sequence=["#4c78a8", "#e45756"],
        )
        figure.update_layout(showlegend=False, height=320, margin=dict(t=20, b=20))
        st.plotly_chart(figure, width="stretch")
        share = summary["n_positive"] / max(summary["n_labelled"], 1)
        st.caption(f"{100 * share:.1f} % tumour. The full Kaggle training set is 40.5 % tumour.")

with grid_tab:
    controls = st.columns([2, 2, 1])
    choices = {"all": None, "tumour (1)": 1, "normal (0)": 0} if dataset.labels is not None else {"all": None}
    shown = controls[0].radio("Show", list(choices), horizontal=True, key="grid_filter")
    indices = filtered_indices(dataset, choices[shown])
    n_pages = max(1, -(-len(indices) // PAGE_SIZE))
    page = controls[1].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="grid_page")
    with_box = controls[2].toggle(
        "Centre box", value=True, help="The label refers to the centre 32×32 px only."
    )
    on_page = page_of(indices, int(page), PAGE_SIZE)
    patches, kept, bad = dataset.read_tolerant(on_page)
    for row_start in range(0, len(kept), GRID_COLUMNS):
        columns = st.columns(GRID_COLUMNS)
        for column, k in zip(columns, range(row_start, min(row_start + GRID_COLUMNS, len(kept)))):
            i = kept[k]
            image = draw_centre_box(patches[k]) if with_box else patches[k]
            label = label_name(dataset.labels[i]) if dataset.labels is not None else "unlabelled"
            column.image(image, caption=f"{dataset.ids[i][:10]} · {label}", width="stretch")
    for i, problem in bad.items():
        st.warning(f"{dataset.ids[i]}: {problem}")

    st.subheader("One patch in detail")
    if len(indices):
        choice = st.selectbox(
            "Patch", on_page.tolist(), format_func=lambda i: dataset.ids[i], key="detail_patch"
        )
        try:
            patch = dataset.read_patch(choice)
        except PatchLensError as error:
            st.error(str(error))
        else:
            left, right = st.columns([1, 2])
            left.image(draw_centre_box(patch) if with_box else patch, width=288)
            label = label_name(dataset.labels[choice]) if dataset.labels is not None else "unlabelled"
            left.markdown(
                f"**id** `{dataset.ids[choice]}`  \n**label** {label}  \n"
                f"**source** `{dataset.source_of(choice)}`"
            )
            histogram = px.line(
                channel_histograms(patch),
                x="value",
                y="count",
                color="channel",
                color_discrete_map={"red": "#d62728", "green": "#2ca02c", "blue": "#1f77b4"},
            )
            histogram.update_layout(height=300, margin=dict(t=20, b=20), xaxis_title="pixel value")
            right.plotly_chart(histogram, width="stretch")


@st.cache_data(show_spinner="Sampling colour statistics…", max_entries=16)
def _colour_table(path: str, n: int, scanned: bool) -> pd.DataFrame:
    return colour_statistics(dataset)


with colour_tab:
    st.caption("Statistics over a random sample of up to 2,000 patches, per class.")
    table = _colour_table(path, len(dataset), dataset.scanned)
    if table.empty:
        st.info("No readable patch to measure.")
    else:
        st.dataframe(table, hide_index=True, width="stretch")
        long = table.melt(
            id_vars="class",
            value_vars=["mean red", "mean green", "mean blue"],
            var_name="channel",
            value_name="mean value",
        )
        st.plotly_chart(
            px.bar(long, x="channel", y="mean value", color="class", barmode="group", height=320),
            width="stretch",
        )

with problems_tab:
    if st.button("Check every file", help="Decode every patch to find unreadable or wrong-sized files."):
        bar = st.progress(0.0, text="Decoding…")
        found = dataset.scan(
            progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done:,}/{total:,}")
        )
        st.success(f"Checked every file: {len(found)} more unreadable.")
        st.rerun()
    problems = dataset.describe()["problems"]
    if problems:
        st.dataframe(pd.DataFrame(problems), hide_index=True, width="stretch")
    else:
        st.success("No problems found.")
