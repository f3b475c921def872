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

import hashlib

import pandas as pd
import plotly.express as px
import streamlit as st

from core.data.base import shown_problems
from core.data.images import draw_centre_box
from core.data.normalise import META_KEY, StainNormaliser
from core.data.quality import FLAG_MEANINGS, IMAGE_FLAGS, OK, quality_labels
from core.data.stats import (
    ALL,
    DatasetQuality,
    channel_histograms,
    colour_statistics,
    dataset_quality,
    filtered_indices,
    label_name,
    page_of,
    with_quality,
)
from core.errors import PatchLensError
from core.formatting import quality_words, short_id
from ui.cache import dataset_key
from ui.frame import page
from ui.shared import (
    DATASET_KEY,
    active_dataset,
    active_model_path,
    dataset_label,
    from_url,
    one_of,
    page_in,
    to_url,
)
from ui.text import md_code, md_escape

PAGE_SIZE = 24
GRID_COLUMNS = 8
CAPTION_CHARS = 16  # a grid caption's id, cut in the middle: fits one line of an 8-column grid
TABS = ["Label balance", "Patches", "Quality", "Colour", "Problems"]
QUALITY_CHOICES = [ALL, OK, *IMAGE_FLAGS]  # a dataset has no model: no out_of_distribution
OK_MEANING = "no flag: the patch looks like a usable H&E patch"
TAB_KEY = "dataset_tab"
# What the user set lives in the URL too (ui.shared.from_url/to_url), so a reload or a copied link keeps it.
URL_TAB, URL_SHOW, URL_QUALITY, URL_PAGE = "tab", "grid_show", "grid_quality", "grid_page"
GRID_OF_KEY = "dataset_grid_of"  # the dataset whose grid the URL's grid parameters describe
STAIN_KEY = (
    "dataset_stain"  # the "Stain normalisation" expander's open state (its content runs only when open)
)
STAIN_METHODS = ("macenko", "reinhard")
STAIN_SAMPLE = 128  # patches of the dataset a reference is picked from when the model has none


def scoped(name: str, path: str) -> str:
    """A widget key that belongs to one dataset (its path)."""
    return f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:10]}"


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


def patch_grid(dataset, path: str) -> None:
    controls = st.columns([2, 3, 1.5, 1.5])  # room for the whole 'Centre box' label at 1,280 px
    choices = {"all": None, "tumour (1)": 1, "normal (0)": 0} if dataset.labels is not None else {"all": None}
    forget_another_datasets_grid(path)
    from_url(scoped("grid_filter", path), URL_SHOW, one_of(choices))
    shown = controls[0].radio("Show", list(choices), horizontal=True, key=scoped("grid_filter", path))
    to_url(URL_SHOW, None if shown == "all" else shown)
    from_url(scoped("grid_quality", path), URL_QUALITY, one_of(QUALITY_CHOICES))
    wanted = controls[1].radio(
        "Quality",
        QUALITY_CHOICES,
        format_func=quality_words,
        horizontal=True,
        key=scoped("grid_quality", path),
        help="Keep only the patches without a flag (ok) or with one flag. " + flag_help(),
    )
    to_url(URL_QUALITY, None if wanted == ALL else wanted)
    quality = dataset_quality_of(dataset, path) if wanted != ALL else None
    indices = with_quality(filtered_indices(dataset, choices[shown]), quality, wanted)
    if quality is not None and quality.sampled:
        st.caption(
            f"Quality filter: among the {len(quality.indices):,} sampled patches (see the Quality tab)."
        )
    if not len(indices):
        st.info("No patch matches these filters.")
    n_pages = max(1, -(-len(indices) // PAGE_SIZE))
    from_url(scoped("grid_page", path), URL_PAGE, page_in(n_pages))
    page = controls[2].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key=scoped("grid_page", path))
    to_url(URL_PAGE, None if page == 1 else str(int(page)))
    with_box = controls[3].toggle(
        "Centre box", value=True, key="grid_box", help="The label refers to the centre 32×32 px only."
    )
    on_page = page_of(indices, int(page), PAGE_SIZE)
    patches, kept, bad = dataset.read_tolerant(on_page)
    dataset.record_unreadable(bad)
    flags = quality_labels(patches) if len(kept) else []
    for row_start in range(0, len(kept), GRID_COLUMNS):
        columns = st.columns(GRID_COLUMNS)
        for column, k in zip(columns, range(row_start, min(row_start + GRID_COLUMNS, len(kept)))):
            i = kept[k]
            image = draw_centre_box(patches[k]) if with_box else patches[k]
            label = label_name(dataset.labels[i]) if dataset.labels is not None else "unlabelled"
            caption = f"{md_escape(short_id(dataset.ids[i], CAPTION_CHARS))} · {label}{flag_note(flags[k])}"
            column.image(image, caption=caption, width="stretch")
    for i, problem in bad.items():
        st.warning(md_escape(f"{short_id(dataset.ids[i], 40)}: {problem}"))
    if len(indices):
        patch_detail(dataset, path, on_page, with_box)


def forget_another_datasets_grid(path: str) -> None:
    """The URL's grid filters and page belong to the dataset they were set on: once the session opens
    another one, they are dropped (a reload of the same dataset keeps them)."""
    if st.session_state.get(GRID_OF_KEY, path) != path:
        for param in (URL_SHOW, URL_QUALITY, URL_PAGE):
            to_url(param, None)
    st.session_state[GRID_OF_KEY] = path


def flag_note(quality: str) -> str:
    """The short caption suffix of a flagged patch (' · ⚠ not_he'); nothing for an ok one."""
    return "" if quality == OK else f" · ⚠ {quality_words(quality)}"


def flag_help() -> str:
    return " ".join(f"**{flag}**: {FLAG_MEANINGS[flag]}." for flag in IMAGE_FLAGS)


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


def patch_detail(dataset, path: str, on_page, with_box: bool) -> None:
    st.subheader("One patch in detail")
    choice = st.selectbox(
        "Patch", on_page.tolist(), format_func=lambda i: dataset.ids[i], key=scoped("detail_patch", path)
    )
    try:
        patch = dataset.read_patch(choice)
    except PatchLensError as error:
        st.error(md_escape(error))
        return
    left, right = st.columns([1, 2])
    left.image(draw_centre_box(patch) if with_box else patch, width=288)
    label = label_name(dataset.labels[choice]) if dataset.labels is not None else "unlabelled"
    left.markdown(
        f"**id** {md_code(dataset.ids[choice])}  \n**label** {label}  \n"
        f"**quality** {quality_words(quality_labels(patch)[0])}  \n**source** {md_code(dataset.source_of(choice))}"
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
    stain_preview(dataset, path, patch)


@st.cache_data(show_spinner="Picking a stain reference from the dataset…", max_entries=16)
def _dataset_reference(content: tuple[str, int, str], method: str, _dataset) -> StainNormaliser:
    import numpy as np

    rows = np.sort(np.random.default_rng(0).permutation(len(_dataset))[:STAIN_SAMPLE])
    patches, kept, _ = _dataset.read_tolerant(rows.tolist())
    return StainNormaliser(method).fit(patches, ids=[_dataset.ids[i] for i in kept])


def model_normaliser() -> StainNormaliser | None:
    """The active model's stain normaliser, read from its file's metadata (no TensorFlow)."""
    from core.model.io import read_model_meta, resolve_model_path

    path = active_model_path()
    try:
        meta = read_model_meta(resolve_model_path(path)).get(META_KEY) if path else None
    except PatchLensError:
        return None
    return StainNormaliser.from_meta(meta) if meta else None


def stain_preview(dataset, path: str, patch) -> None:
    """The chosen patch before and after Macenko and Reinhard normalisation, drawn only when open."""
    expander = st.expander("Stain normalisation", key=STAIN_KEY, on_change="rerun")
    if not expander.open:
        return
    with expander:
        own = model_normaliser()
        columns = st.columns(1 + len(STAIN_METHODS))
        columns[0].image(patch, caption="as stored", width="stretch")
        for column, method in zip(columns[1:], STAIN_METHODS):
            if own is not None and own.method == method:
                normaliser, source = own, "the active model's reference"
            else:
                try:
                    normaliser = _dataset_reference(dataset_key(dataset), method, dataset)
                except PatchLensError as error:
                    column.info(f"{method}: {md_escape(error)}")
                    continue
                source = f"reference {normaliser.reference.get('id', '?')} of this dataset"
            column.image(normaliser.transform(patch), caption=f"{method} · {source}", width="stretch")
        st.caption(
            "A model trained with stain normalisation (Train page) applies its own reference wherever it "
            "scores a patch; background and flat patches pass unchanged."
        )


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
