"""Mistakes: false positives and false negatives at the shared threshold, most confident first,
with Grad-CAM on demand and a CSV of the filtered list.

The list is derived from the same cached predictions as Evaluate (core.evaluate.metrics.mistakes); only
the patches of the page shown are read, and heatmaps are computed only when asked for, for that
page only.
"""

import streamlit as st

from core.constants import LABEL_NAMES
from core.data.quality import FLAG_MEANINGS, OK, QUALITY_FLAGS
from core.errors import PatchLensError
from core.evaluate.interpret import MISTAKE_KINDS, Interpretation, mistakes_csv
from core.evaluate.predictions import ALL_QUALITIES, has_quality
from core.formatting import page_bounds
from ui.frame import page
from ui.gallery import blend, explain_settings, heatmaps, patch_grid, with_box
from ui.prediction_source import pick_source, show_source_notes, threshold_control

PAGE_SIZE = 24
KIND_FILTERS = {"both": None, "false positives": "false positive", "false negatives": "false negative"}
SHORT = {"false positive": "FP", "false negative": "FN"}
DEFAULT_SETTINGS = {"method": "gradcam", "target": "tumour", "alpha": 0.4, "colormap": "jet", "box": True}

with page("Mistakes"):
    source = pick_source()
    if source is None:
        st.stop()
    show_source_notes(source)
    threshold = threshold_control()

    with_flags = has_quality(source.predictions)
    filters = st.columns([2, 3, 2] if with_flags else [2, 3])
    shown_kind = filters[0].radio("Show", list(KIND_FILTERS), horizontal=True, key="mistakes_kind")
    low, high = filters[1].slider("P(tumour) between", 0.0, 1.0, (0.0, 1.0), 0.01, key="mistakes_range")
    quality = ALL_QUALITIES
    if with_flags:
        quality = filters[2].selectbox(
            "Input quality",
            [ALL_QUALITIES, OK, *QUALITY_FLAGS],
            format_func=lambda q: {ALL_QUALITIES: "all patches", OK: "ok (not flagged)"}.get(
                q, f"flagged {q}"
            ),
            key="mistakes_quality",
            help="Flags of the input-quality gate: "
            + "; ".join(f"{flag}: {meaning}" for flag, meaning in FLAG_MEANINGS.items()),
        )
    else:
        st.caption("No input-quality flags for these predictions, so they cannot be filtered by quality.")
    try:
        interpretation = Interpretation(source.predictions)
        every = interpretation.mistakes(threshold)
        wrong = interpretation.mistakes(
            threshold,
            kind=KIND_FILTERS[shown_kind],
            min_prob=low,
            max_prob=high,
            quality=quality,
        )
    except PatchLensError as error:
        st.error(f"These predictions cannot be searched for mistakes: {error}")
        st.stop()

    counts = every["kind"].value_counts()
    cards = st.columns(4)
    cards[0].metric(
        "False positives", f"{counts.get(MISTAKE_KINDS[0], 0):,}", help="Normal patches called tumour."
    )
    cards[1].metric(
        "False negatives", f"{counts.get(MISTAKE_KINDS[1], 0):,}", help="Tumour patches called normal."
    )
    cards[2].metric("Shown after filters", f"{len(wrong):,}")
    cards[3].metric("Threshold", f"{threshold:.3f}")

    sources = [source.lookup.source_of(i) if source.lookup else "" for i in wrong["id"]]
    st.download_button(
        "Download this list (CSV)",
        data=mistakes_csv(wrong, sources),
        file_name=f"mistakes_at_{threshold:.3f}.csv",
        mime="text/csv",
        key="mistakes_csv",
        disabled=wrong.empty,
    )
    if wrong.empty:
        st.success("No mistakes match these filters at this threshold.")
        st.stop()

    # --- the gallery ---------------------------------------------------------------------------
    controls = st.columns([1, 1, 3])
    _, _, n_pages = page_bounds(len(wrong), 1, PAGE_SIZE)
    page = controls[0].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="mistakes_page")
    start, stop, _ = page_bounds(len(wrong), int(page), PAGE_SIZE)
    on_page = wrong.iloc[start:stop]
    can_explain = source.model_path is not None and source.lookup is not None
    explain = controls[1].toggle(
        "Grad-CAM", False, key="mistakes_explain", disabled=not can_explain,
        help="Heatmaps for the patches of this page only." if can_explain else "No model file for these predictions.",
    )  # fmt: skip
    settings = explain_settings("mistakes") if explain else {"box": True}
    st.caption(f"Mistakes {start + 1:,}–{stop:,} of {len(wrong):,}, most confident first "
               "(confidence = |P(tumour) − true label|).")  # fmt: skip

    if source.lookup is None:
        st.dataframe(on_page, hide_index=True, width="stretch")
        st.stop()
    patches, found, missing = source.lookup.read(on_page["id"].tolist())
    rows = on_page.set_index("id").loc[found]
    maps = heatmaps(source.model_path, patches, found, settings, threshold) if explain else None
    images = [
        blend(patch, maps[k], settings) if maps is not None else with_box(patch, settings["box"])
        for k, patch in enumerate(patches)
    ]
    captions = [
        f"{SHORT[row.kind]} · p={row.prob:.3f} · {LABEL_NAMES[int(row.label)]}"
        + (f" · {row.quality}" if with_flags and row.quality != OK else "")
        for row in rows.itertuples()
    ]
    patch_grid(images, captions)
    if missing:
        st.caption(f"{len(missing)} patch(es) could not be read: " + "; ".join(list(missing.values())[:3]))

    # --- one mistake in detail -------------------------------------------------------------------
    st.subheader("One mistake in detail")
    if not found:
        st.stop()
    chosen = st.selectbox(
        "Mistake",
        found,
        format_func=lambda i: f"{SHORT[rows.loc[i, 'kind']]} · p={rows.loc[i, 'prob']:.3f} · {i}",
        key="mistakes_detail",
    )
    k = found.index(chosen)
    row = rows.loc[chosen]
    left, middle, right = st.columns([1, 1, 1])
    left.image(with_box(patches[k], True), caption="patch (centre 32×32 px outlined)", width="stretch")
    if can_explain and (explain or middle.button("Grad-CAM for this one", key="mistakes_detail_explain")):
        detail_settings = settings if explain else DEFAULT_SETTINGS
        detail = heatmaps(source.model_path, patches[k : k + 1], [chosen], detail_settings, threshold)
        if detail is not None:
            middle.image(
                blend(patches[k], detail[0], detail_settings),
                caption=detail_settings["method"],
                width="stretch",
            )
    details = {
        "id": f"`{chosen}`",
        "kind": row["kind"],
        "true label": f"{LABEL_NAMES[int(row['label'])]} ({int(row['label'])})",
        "P(tumour)": f"{row['prob']:.4f}",
        "confidence": f"{row['confidence']:.4f}",
        **({"input quality": row["quality"]} if with_flags else {}),
        "threshold": f"{threshold:.3f}",
        "source": f"`{source.lookup.source_of(chosen)}`",
        "predictions": source.title,
    }
    right.markdown("  \n".join(f"**{name}** {value}" for name, value in details.items()))
