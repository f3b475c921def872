"""Compare: two models on the active labelled dataset — overlaid ROC and PR curves, the AUC difference
with its DeLong interval and p-value, both accuracies at the shared threshold with the exact McNemar
p-value, and the patches where they disagree, with both Grad-CAMs side by side on demand.

Both models' predictions come from the prediction cache Evaluate reads: a model already evaluated on
this dataset is not run again; a missing one is computed on request by the same background prediction
job as Evaluate's (ui.prediction_jobs, drawn by ui.job_panel), which a reload or a second session finds
again and which can be stopped. Moving the threshold re-derives everything from the cached predictions.
"""

import streamlit as st

from core.diagnose.compare import (
    compare_paired,
    disagreements,
    pair_predictions,
    prediction_files,
)
from core.evaluate.predictions import read_predictions
from core.evaluate.sources import overlap_caption, overlap_warning
from ui.boundary import error_boundary
from ui.cache import lookup_of
from ui.charts import two_model_figures
from ui.compare_panels import GROUPS, gallery, results
from ui.frame import page
from ui.prediction_jobs import prediction_jobs
from ui.prediction_source import overlap_with_training
from ui.shared import (
    DATASET_KEY,
    active_dataset,
    active_model_path,
    dataset_label,
    model_options,
)
from ui.text import md_escape
from ui.threshold import threshold_control

MODEL_A_KEY = "compare_model_a"
MODEL_B_KEY = "compare_model_b"
GROUP_KEY = "compare_group"
CANNOT_COMPARE = "These models cannot be compared on this dataset"


@st.cache_data(show_spinner=False, max_entries=8)
def paired_from_files(file_a: str, mtime_a: float, file_b: str, mtime_b: float):
    """The two cached prediction files, paired (keyed by their paths and mtimes)."""
    return pair_predictions(read_predictions(file_a), read_predictions(file_b))


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
    probs = {model: paired[f"prob_{model.lower()}"].to_numpy() for model in ("A", "B")}
    roc_figure, pr_figure = two_model_figures(paired["label"].to_numpy(), probs, names)
    left, right = st.columns(2)
    left.plotly_chart(roc_figure, width="stretch", key="compare_roc")
    right.plotly_chart(pr_figure, width="stretch", key="compare_pr")


def training_overlaps(models: dict[str, str], names: dict[str, str], dataset) -> None:
    """Per model, how many of these patches it trained on (by pixel content): a warning when any."""
    from core.model.io import read_model_meta, resolve_model_path

    for model, path in models.items():
        with error_boundary(f"Model {model}: its training record cannot be read") as outcome:
            found = overlap_with_training(path, dataset)
            config = read_model_meta(resolve_model_path(path)).get("config")
        if outcome.failed:
            continue
        warning = overlap_warning(found, config, st.session_state.get(DATASET_KEY))
        if warning:
            st.warning(f"Model {model} ({md_escape(names[model])}): {md_escape(warning)}", icon="⚠️")
        else:
            st.caption(f"Model {model} ({md_escape(names[model])}): {overlap_caption(found)}")


def labelled_dataset(options: dict[str, str]):
    """The active dataset when two models can be compared on it; the page stops with the reason otherwise."""
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
    return dataset


def paired_predictions(models: dict[str, str], names: dict[str, str], dataset):
    """Both models' cached predictions, paired by patch; while one is missing, its job's panel (and the
    page stops there)."""
    with error_boundary(stop=True):
        files = prediction_files(models["A"], models["B"], dataset)
    missing = {
        models[model]: f"Model {model} ({names[model]})"
        for model, file in zip("AB", files, strict=True)
        if not file.is_file()
    }
    if missing:
        prediction_jobs(missing, dataset, button="Run the models on this dataset", key="compare_run")
        st.stop()
    with error_boundary(CANNOT_COMPARE, also=(OSError, ValueError), stop=True):
        return paired_from_files(*(item for file in files for item in (str(file), file.stat().st_mtime)))


def disagreement_rows(result: dict, groups, threshold: float):
    """How many patches the models call differently, and the rows of the group chosen (the page
    stops when it is empty)."""
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
    return rows


with page("Compare"):
    options = model_options()
    dataset = labelled_dataset(options)
    model_a, model_b = pick_models(options)
    models, names = {"A": model_a, "B": model_b}, {"A": options[model_a], "B": options[model_b]}
    if model_a == model_b:
        st.warning("Model A and model B are the same model: pick two different ones.")
        st.stop()
    st.caption(
        f"Both on {md_escape(dataset_label(st.session_state.get(DATASET_KEY)))} ({len(dataset):,} patches)."
    )
    threshold = threshold_control()
    paired = paired_predictions(models, names, dataset)
    with error_boundary(CANNOT_COMPARE, also=(ValueError,), stop=True):
        result, groups = compare_paired(paired, threshold), disagreements(paired, threshold)
    training_overlaps(models, names, dataset)
    results(result, names, threshold)
    curves(paired, names)
    rows = disagreement_rows(result, groups, threshold)
    lookup = lookup_of(dataset)
    gallery(rows, lookup, model_a, model_b, threshold)
