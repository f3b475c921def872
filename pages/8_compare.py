"""Compare: two models on the active labelled dataset — overlaid ROC and PR curves, the AUC difference
with its DeLong interval and p-value, both accuracies at the shared threshold with the exact McNemar
p-value, and the patches where they disagree, with both Grad-CAMs side by side on demand.

Both models' predictions come from the prediction cache Evaluate reads: a model already evaluated on
this dataset is not run again; a missing one is computed on request by the same background prediction
job as Evaluate's (ui.prediction_jobs, drawn by ui.job_panel), which a reload or a second session finds
again and which can be stopped. Moving the threshold re-derives everything from the cached predictions.
"""

import streamlit as st

from core.constants import LABEL_NAMES
from core.diagnose.compare import (
    compare_paired,
    disagreements,
    pair_predictions,
    prediction_files,
    significance,
)
from core.errors import PatchLensError
from core.evaluate.metrics import pr_points, roc_points
from core.evaluate.predictions import read_predictions
from core.evaluate.sources import dataset_lookup, overlap_caption, overlap_warning
from core.formatting import page_bounds
from ui.charts import curve, curve_figure, reference_line
from ui.frame import page
from ui.gallery import blend, heatmaps, patch_grid, with_box
from ui.prediction_jobs import prediction_jobs
from ui.prediction_source import overlap_with_training, threshold_control
from ui.shared import (
    DATASET_KEY,
    active_dataset,
    active_model_path,
    dataset_label,
    model_options,
)
from ui.text import md_escape

MODEL_A_KEY = "compare_model_a"
MODEL_B_KEY = "compare_model_b"
GROUP_KEY = "compare_group"
PAGE_KEY = "compare_page"
EXPLAIN_KEY = "compare_explain"
PAGE_SIZE = 12
GROUPS = ("A right, B wrong", "B right, A wrong")
COLOURS = {"A": "#4c78a8", "B": "#f58518"}
GRADCAM = {
    "method": "gradcam",
    "target": "tumour",
    "scale": "shared",
    "alpha": 0.4,
    "colormap": "jet",
    "box": True,
}


@st.cache_data(show_spinner=False, max_entries=8)
def paired_from_files(file_a: str, mtime_a: float, file_b: str, mtime_b: float):
    """The two cached prediction files, paired (keyed by their paths and mtimes)."""
    return pair_predictions(read_predictions(file_a), read_predictions(file_b))


@st.cache_resource(show_spinner=False, max_entries=4)
def patch_lookup(path: str, n: int, fingerprint: str, _dataset):
    return dataset_lookup(_dataset)


def pick_models(options: dict[str, str]) -> tuple[str, str]:
    """Selectboxes for model A (default: the active model) and model B (default: another one)."""
    paths = list(options)
    if st.session_state.get(MODEL_A_KEY) not in paths:
        active = active_model_path()
        st.session_state[MODEL_A_KEY] = active if active in paths else paths[0]
    if st.session_state.get(MODEL_B_KEY) not in paths:
        st.session_state[MODEL_B_KEY] = next(p for p in paths if p != st.session_state[MODEL_A_KEY])
    left, right = st.columns(2)
    model_a = left.selectbox("Model A", paths, format_func=options.get, key=MODEL_A_KEY)
    model_b = right.selectbox("Model B", paths, format_func=options.get, key=MODEL_B_KEY)
    return model_a, model_b


def curves(paired, names: dict[str, str]) -> None:
    """Overlaid ROC and PR curves of both models."""
    labels = paired["label"].to_numpy()
    roc_traces, pr_traces = [], []
    for model in ("A", "B"):
        probs = paired[f"prob_{model.lower()}"].to_numpy()
        roc, pr = roc_points(labels, probs), pr_points(labels, probs)
        line = dict(color=COLOURS[model])
        roc_traces.append(curve(roc.fpr, roc.tpr, f"{model}: {names[model]} (AUC {roc.auc:.3f})", line=line))
        pr_traces.append(
            curve(
                pr.recall, pr.precision, f"{model}: {names[model]} (AP {pr.average_precision:.3f})", line=line
            )
        )
    layout = dict(
        height=420, margin=dict(t=40, b=20), legend=dict(orientation="h", x=0, y=-0.2)
    )  # off the curves
    roc_figure = curve_figure(
        [*roc_traces, reference_line("chance")],
        title="ROC",
        x_title="false positive rate",
        y_title="sensitivity",
        **layout,
    )
    pr_figure = curve_figure(
        pr_traces, title="Precision-recall", x_title="recall", y_title="precision", **layout
    )
    left, right = st.columns(2)
    left.plotly_chart(roc_figure, width="stretch", key="compare_roc")
    right.plotly_chart(pr_figure, width="stretch", key="compare_pr")


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


def training_overlaps(models: dict[str, str], names: dict[str, str], dataset) -> None:
    """Per model, how many of these patches it trained on (by pixel content): a warning when any."""
    from core.model.io import read_model_meta, resolve_model_path

    for model, path in models.items():
        try:
            found = overlap_with_training(path, dataset)
            config = read_model_meta(resolve_model_path(path)).get("config")
        except PatchLensError as error:
            st.error(f"Model {model}: its training record cannot be read ({md_escape(error)}).")
            continue
        warning = overlap_warning(found, config, st.session_state.get(DATASET_KEY))
        if warning:
            st.warning(f"Model {model} ({md_escape(names[model])}): {md_escape(warning)}", icon="⚠️")
        else:
            st.caption(f"Model {model} ({md_escape(names[model])}): {overlap_caption(found)}")


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


with page("Compare"):
    options = model_options()
    if len(options) < 2:
        st.info(
            "Comparing needs two models: train one on the Train page (the bundled baseline is the other)."
        )
        st.stop()
    dataset = active_dataset()
    if dataset is None:
        st.stop()
    if dataset.labels is None:
        name = dataset_label(st.session_state.get(DATASET_KEY))
        st.info(
            f"{md_escape(name)} is unlabelled: comparing models needs labels. Open a labelled dataset in the sidebar."
        )
        st.stop()
    model_a, model_b = pick_models(options)
    names = {"A": options[model_a], "B": options[model_b]}
    if model_a == model_b:
        st.warning("Model A and model B are the same model: pick two different ones.")
        st.stop()
    st.caption(
        f"Both on {md_escape(dataset_label(st.session_state.get(DATASET_KEY)))} ({len(dataset):,} patches)."
    )
    threshold = threshold_control()

    try:
        files = prediction_files(model_a, model_b, dataset)
    except PatchLensError as error:
        st.error(md_escape(error))
        st.stop()
    missing = {
        path: f"Model {model} ({names[model]})"
        for model, path, file in zip("AB", (model_a, model_b), files, strict=True)
        if not file.is_file()
    }
    if missing:
        prediction_jobs(missing, dataset, button="Run the models on this dataset", key="compare_run")
        st.stop()
    try:
        paired = paired_from_files(*(item for file in files for item in (str(file), file.stat().st_mtime)))
        result = compare_paired(paired, threshold)
        groups = disagreements(paired, threshold)
    except (PatchLensError, OSError, ValueError) as error:
        st.error(f"These models cannot be compared on this dataset: {md_escape(error)}")
        st.stop()

    training_overlaps({"A": model_a, "B": model_b}, names, dataset)
    results(result, names, threshold)
    curves(paired, names)

    st.subheader("Where they disagree")
    counts = st.columns(3)
    counts[0].metric("Patches called differently", f"{result['n_disagree']:,}")
    counts[1].metric(GROUPS[0], f"{len(groups.a_right):,}")
    counts[2].metric(GROUPS[1], f"{len(groups.b_right):,}")
    group = st.radio("Show", GROUPS, horizontal=True, key=GROUP_KEY)
    rows = groups.a_right if group == GROUPS[0] else groups.b_right
    if rows.empty:
        st.success(f"No patch at {threshold:.3f}: {group.lower()}.")
        st.stop()
    lookup = patch_lookup(str(dataset.path), len(dataset), repr(getattr(dataset, "fingerprint", ())), dataset)
    gallery(rows, lookup, model_a, model_b, threshold)
