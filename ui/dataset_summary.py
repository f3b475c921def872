"""The Dataset page's summaries: the header cards, the label balance, the input quality (measured once
per dataset content, core.data.stats.dataset_quality), the colour statistics and the problems found."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.data.base import shown_problems
from core.data.quality import FLAG_MEANINGS, OK
from core.data.stats import DatasetQuality, colour_statistics, dataset_quality
from core.formatting import quality_words
from ui.cache import dataset_key

OK_MEANING = "no flag: the patch looks like a usable H&E patch"


def header_cards(dataset) -> None:
    summary = dataset.describe()
    cards = st.columns([2.2, 1, 1, 1, 1])  # 'class-folders' whole at 1,280 px (it read 'class-fo…')
    cards[0].metric("Layout", summary["layout"])
    cards[1].metric("Patches", f"{summary['n_patches']:,}")
    cards[2].metric("Tumour (1)", f"{summary['n_positive']:,}")
    cards[3].metric("Normal (0)", f"{summary['n_negative']:,}")
    cards[4].metric("Problems", f"{len(summary['problems']):,}")
    if not dataset.scanned:
        st.caption(
            "Files were listed, not decoded, so an unreadable image is counted once a grid page or "
            "*Check every file* (Problems tab) has read it."
        )


def label_balance(dataset) -> None:
    if dataset.labels is None:
        st.info("This dataset is unlabelled: use it on the Predict page.")
        return
    summary = dataset.describe()
    balance = pd.DataFrame(
        {"class": ["normal (0)", "tumour (1)"], "patches": [summary["n_negative"], summary["n_positive"]]}
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


@st.cache_data(show_spinner="Measuring the input quality of the patches…", max_entries=16)
def _quality(content: tuple[str, int, str], scanned: bool, _dataset) -> DatasetQuality:
    return dataset_quality(_dataset)


def dataset_quality_of(dataset, path: str) -> DatasetQuality:
    """The dataset's quality labels, cached per content (path, fingerprint, size, scanned); the
    unreadable patches met on the way are listed as problems."""
    quality = _quality(dataset_key(dataset), dataset.scanned, dataset)
    dataset.record_unreadable(quality.unreadable)
    return quality


def quality_summary(dataset, path: str) -> None:
    quality = dataset_quality_of(dataset, path)
    assessed = len(quality.indices)
    if quality.sampled:
        st.caption(
            f"Measured on a stratified random sample of {assessed:,} of {quality.n_patches:,} patches "
            "(each class keeps its share): the counts are the sample's."
        )
    else:
        st.caption(f"Measured on every readable patch ({assessed:,}).")
    if quality.unreadable:
        st.caption(f"{len(quality.unreadable):,} unreadable patches skipped (see Problems).")
    counts = quality.counts
    meanings = {OK: OK_MEANING, **FLAG_MEANINGS}
    for card, (name, count) in zip(st.columns(len(counts)), counts.items()):
        card.metric(quality_words(name), f"{count:,}", help=meanings.get(name))
    table = pd.DataFrame(
        {
            "quality": [quality_words(name) for name in counts],
            "patches": list(counts.values()),
            "share %": [round(100 * c / max(assessed, 1), 1) for c in counts.values()],
            "meaning": [meanings.get(name, "") for name in counts],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("A patch with two flags counts under each. The Patches tab filters the grid by quality.")


@st.cache_data(show_spinner="Sampling colour statistics…", max_entries=16)
def _colour_table(path: str, n: int, scanned: bool, _dataset) -> pd.DataFrame:
    return colour_statistics(_dataset)


def colour(dataset, path: str) -> None:
    st.caption("Statistics over a random sample of up to 2,000 patches, per class.")
    table = _colour_table(path, len(dataset), dataset.scanned, dataset)
    if table.empty:
        st.info("No readable patch to measure.")
        return
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


def problems(dataset) -> None:
    if not dataset.scanned and st.button(
        "Check every file", help="Decode every patch to find unreadable or wrong-sized files."
    ):
        bar = st.progress(0.0, text="Decoding…")
        found = dataset.scan(
            progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{done:,}/{total:,}")
        )
        bar.empty()
        st.success(f"Checked every file: {len(found)} more unreadable.")
    elif dataset.scanned:
        st.caption("Every file has been decoded.")
    listed = shown_problems(dataset.problems)
    if listed:
        st.dataframe(
            pd.DataFrame(listed, columns=["item", "problem"]),
            hide_index=True,
            width="stretch",
            column_config={"item": st.column_config.TextColumn(width="medium"),
                           "problem": st.column_config.TextColumn(width="large")},
        )  # fmt: skip
        st.caption(
            "A patch is named by its file; ids a label CSV lists without an image file are counted, "
            "not shown (`python -m core inspect PATH` lists them)."
        )
    else:
        st.success("No problems found.")
