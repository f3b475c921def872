"""The Dataset page's patch grid: filters by label and input quality, a page of patches with their
captions and flags, and the chosen patch in detail (ui.dataset_patch). The filters and the page live in
the URL (ui.shared.from_url/to_url) and belong to the dataset they were set on.

Session state keys: grid_filter-*, grid_quality-*, grid_page-* (scoped to a dataset), grid_box, and
dataset_grid_of (the dataset whose grid the URL's grid parameters describe).
"""

from __future__ import annotations

import streamlit as st

from core.data.images import draw_centre_box
from core.data.quality import FLAG_MEANINGS, IMAGE_FLAGS, OK, quality_labels
from core.data.stats import ALL, filtered_indices, label_name, page_of, with_quality
from core.formatting import quality_words, short_id
from ui.dataset_patch import patch_detail, scoped
from ui.dataset_summary import dataset_quality_of
from ui.shared import from_url, one_of, page_in, to_url
from ui.text import md_escape

PAGE_SIZE = 24
GRID_COLUMNS = 8
CAPTION_CHARS = 16  # a grid caption's id, cut in the middle: fits one line of an 8-column grid
QUALITY_CHOICES = [ALL, OK, *IMAGE_FLAGS]  # a dataset has no model: no out_of_distribution
URL_SHOW, URL_QUALITY, URL_PAGE = "grid_show", "grid_quality", "grid_page"
GRID_OF_KEY = "dataset_grid_of"  # the dataset whose grid the URL's grid parameters describe


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
