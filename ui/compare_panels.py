"""The Compare page's panels: the two models' metrics and tests in words, and one page of the
patches where they disagree, each beside both models' Grad-CAM on demand.

Session state keys:
  compare_page      the page of disagreeing patches shown
  compare_explain   the toggle that adds both Grad-CAMs to that page
"""

from __future__ import annotations

import streamlit as st

from core.constants import LABEL_NAMES
from core.diagnose.compare import significance
from core.formatting import page_bounds
from ui.gallery import blend, heatmaps, patch_grid, with_box
from ui.text import md_escape

PAGE_KEY = "compare_page"
EXPLAIN_KEY = "compare_explain"
PAGE_SIZE = 12
GROUPS = ("A right, B wrong", "B right, A wrong")
GRADCAM = {
    "method": "gradcam",
    "target": "tumour",
    "scale": "shared",
    "alpha": 0.4,
    "colormap": "jet",
    "box": True,
}


def results(result: dict, names: dict[str, str], threshold: float) -> None:
    """The metrics table and the two tests in words."""
    import pandas as pd

    table = pd.DataFrame(
        {
            f"A: {names['A']}": [result["auc_a"], result["accuracy_a"]],
            f"B: {names['B']}": [result["auc_b"], result["accuracy_b"]],
            "A − B": [result["auc_diff"], result["accuracy_a"] - result["accuracy_b"]],
        },
        index=["AUC", f"Accuracy at {threshold:.3f}"],
    )
    st.dataframe(table.style.format("{:.4f}"), width="stretch", key="compare_metrics")
    low, high = result["auc_diff_ci"]
    st.markdown(
        f"**AUC:** the difference A − B is {result['auc_diff']:+.4f} (95 % CI {low:+.4f} to {high:+.4f}, "
        f"DeLong p = {result['delong_p']:.3g}): the AUC difference **is {significance(result['delong_p'])}** "
        "at 5 %.  \n"
        f"**Accuracy at {threshold:.3f}:** {result['accuracy_a']:.4f} vs {result['accuracy_b']:.4f} (exact "
        f"McNemar p = {result['mcnemar_p']:.3g}, on the {result['n_disagree']:,} patches they call "
        f"differently): the accuracy difference **is {significance(result['mcnemar_p'])}** at 5 %."
    )
    st.caption(
        f"{result['n']:,} labelled patches both models scored. Both tests treat patches as independent; "
        "patches of one slide are not, so the true uncertainty is larger."
    )


def gallery(rows, lookup, model_a: str, model_b: str, threshold: float) -> None:
    """One page of disagreeing patches; with Grad-CAM, each patch beside model A's and model B's map."""
    controls = st.columns([1, 1, 2])
    _, _, n_pages = page_bounds(len(rows), 1, PAGE_SIZE)
    page = controls[0].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key=PAGE_KEY)
    explain = controls[1].toggle("Grad-CAM of both", False, key=EXPLAIN_KEY,
                                 help="Heatmaps of both models for the patches of this page only.")  # fmt: skip
    start, stop, _ = page_bounds(len(rows), int(page), PAGE_SIZE)
    on_page = rows.iloc[start:stop]
    st.caption(f"Patches {start + 1:,}–{stop:,} of {len(rows):,}, the widest gap between the models first.")
    patches, found, missing = lookup.read(on_page["id"].tolist())
    shown = on_page.set_index("id").loc[found]
    captions = [
        f"{LABEL_NAMES[int(row.label)]} · A {row.prob_a:.3f} · B {row.prob_b:.3f}"
        for row in shown.itertuples()
    ]
    if not explain:
        patch_grid([with_box(patch, True) for patch in patches], captions)
    else:
        maps = {}
        for model, path in (("A", model_a), ("B", model_b)):
            st.markdown(f"**Model {model}**")
            maps[model] = heatmaps(path, patches, found, GRADCAM, threshold)
        if maps["A"] is None or maps["B"] is None:
            return
        images, texts = [], []
        for k, (patch, caption) in enumerate(zip(patches, captions, strict=True)):
            images.append(with_box(patch, True))
            texts.append(caption)
            for model in ("A", "B"):
                images.append(blend(patch, maps[model][k], GRADCAM))
                texts.append(f"Grad-CAM of {model}")
        patch_grid(images, texts, columns=6)  # two patches a row: patch, A's map, B's map
    if missing:
        st.caption(
            f"{len(missing)} patch(es) could not be read: " + md_escape("; ".join(list(missing.values())[:3]))
        )
