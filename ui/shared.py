"""What every page shares: the active dataset and model (loaded through ui.cache), the sidebar and
the URL. (A background job's progress: ui.job_panel.)

Session state keys (one home for each):
  dataset_path   the active dataset (default: the bundled sample)
  model_path     the active model (default: the bundled baseline, when present)
(Data roots added in the sidebar, and whether this server allows them: ui.roots. Messages left for a
later drawing: ui.notices.)

The active dataset and model also live in the URL (query parameters `dataset` and `model`), so a
reload or a shared link opens the same ones: a new session reads them once (init_state), checks
them like a path typed in the sidebar, and falls back to the defaults with a message when they
cannot be used; every run writes them back (sync_url), since a page switch may drop them. Every run
also drops an active dataset that only a root added in the sidebar let open, once such roots are no
longer honoured (ui.roots). A page keeps what else the user set (filters, page numbers, a tab) in the
URL the same way: `from_url` before its widget, `to_url` after it.

Everything a user or a link supplies (paths, names, error messages quoting them) is shown through
ui.text.md_escape: markdown never turns it into a link or an image.

The sidebar's own actions (Open, Add root, the model picker) are callbacks: they change the state
before the script runs, so what the sidebar names is what the page acts on in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core.constants import DEFAULT_THRESHOLD
from core.errors import PatchLensError
from core.model.io import CHECKPOINT_FILE, FINAL_MODEL_FILE
from core.model.offered import check_offered_model  # the rule is core's; pages import it from here
from core.settings import (
    BASELINE_MODEL,
    SAMPLE_DATASET,
    check_allowed,
)
from core.train.runs import list_runs
from ui.boundary import error_boundary
from ui.cache import dataset_at, model_at
from ui.notices import notice, show_notices
from ui.roots import extra_roots, refused_now, roots_setting
from ui.text import md_escape

DATASET_KEY = "dataset_path"
MODEL_KEY = "model_path"
OPEN_PATH_KEY = "open_path"  # the sidebar's path box
MODEL_PICKER_KEY = "model_picker"  # the sidebar's model selectbox (mirrors MODEL_KEY)
URL_DATASET = "dataset"
URL_MODEL = "model"
THRESHOLD_KEY = "threshold"  # the decision threshold shared by Evaluate, Predict and Mistakes
URL_THRESHOLD = "threshold"
URL_TTA = "tta"  # Evaluate's test-time augmentation: "1" when ticked
URL_LEAVE_OUT = "leave_out"  # Evaluate's "Leave out flagged patches": "1" when on


# --------------------------------------------------------------------------- session state and URL


def init_state() -> None:
    """Fill the session's state once: from the URL when it names a usable dataset/model, else defaults."""
    if DATASET_KEY not in st.session_state:
        st.session_state[DATASET_KEY] = _dataset_from_url()
    if MODEL_KEY not in st.session_state:
        st.session_state[MODEL_KEY] = _model_from_url()
    _recheck_dataset()


def default_model() -> str | None:
    return str(BASELINE_MODEL) if BASELINE_MODEL.exists() else None


def _dataset_from_url() -> str:
    text = st.query_params.get(URL_DATASET)
    if not text:
        return str(SAMPLE_DATASET)
    try:
        path = str(check_allowed(text, extra_roots()))
        dataset_at(path)
    except PatchLensError as error:
        notice(
            "main",
            "warning",
            f"The dataset in the link cannot be opened ({md_escape(error)}) — showing the bundled sample.",
        )
        return str(SAMPLE_DATASET)
    return path


def _model_from_url() -> str | None:
    text = st.query_params.get(URL_MODEL)
    if not text:
        return default_model()
    try:
        check_offered_model(text)
    except PatchLensError as error:
        fallback = "the bundled baseline" if default_model() else "no model"
        notice(
            "main",
            "warning",
            f"The model in the link cannot be used ({md_escape(error)}) — using {fallback}.",
        )
        return default_model()
    return text


def sync_url() -> None:
    """Write the active dataset, model and threshold into the URL (only what differs, defaults left
    out): every run, since a page switch drops the query parameters."""
    wanted = {
        URL_DATASET: st.session_state.get(DATASET_KEY),
        URL_MODEL: st.session_state.get(MODEL_KEY),
    }
    defaults = {URL_DATASET: str(SAMPLE_DATASET), URL_MODEL: default_model()}
    if THRESHOLD_KEY in st.session_state:  # until a page with the threshold reads it, the URL's stays
        wanted[URL_THRESHOLD] = repr(float(st.session_state[THRESHOLD_KEY]))
        defaults[URL_THRESHOLD] = repr(DEFAULT_THRESHOLD)
    for key, value in wanted.items():
        if not value or value == defaults[key]:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def _recheck_dataset() -> None:
    """Drop an active dataset that only a root added in the sidebar let open, once such roots are no
    longer honoured (ui.roots), with a message."""
    error = refused_now(st.session_state[DATASET_KEY])
    if error is not None:
        notice("main", "warning", f"The active dataset cannot be used any more ({md_escape(error)}) — "
               "showing the bundled sample.")  # fmt: skip
        st.session_state[DATASET_KEY] = str(SAMPLE_DATASET)


def from_url(key: str, param: str, parse: Callable[[str], object]) -> None:
    """A session that does not hold widget `key` yet (a reload, a copied link) starts it from the URL's
    `param`, when `parse` accepts the text (it returns None or raises ValueError for a bad one).
    Call before the widget is drawn; `to_url` after it."""
    if key in st.session_state or param not in st.query_params:
        return
    try:
        value = parse(st.query_params[param])
    except (TypeError, ValueError):
        value = None
    if value is not None:
        st.session_state[key] = value


def to_url(param: str, text: str | None) -> None:
    """Keep the URL's `param` at `text` (None: left out, as for a default), so a reload or a copied
    link restores what the user set on a page (its filters, its page number, its tab)."""
    if text is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != text:
        st.query_params[param] = text


def one_of(options) -> Callable[[str], str | None]:
    """A `from_url` parser that accepts only `options`."""
    return lambda text: text if text in options else None


def page_in(n_pages: int) -> Callable[[str], int]:
    """A `from_url` parser of a 1-based page number, clamped to the `n_pages` there are now."""
    return lambda text: min(max(int(text), 1), max(n_pages, 1))


def restore_flag(state_key: str, url_key: str) -> None:
    """A new session (a reload, a shared link) starts a page's checkbox or toggle from the URL's flag."""
    from_url(state_key, url_key, lambda text: True if text == "1" else None)


def keep_flag(url_key: str, on: bool) -> None:
    """Keep a page's checkbox or toggle in the URL: "1" when on, left out when off."""
    to_url(url_key, "1" if on else None)


# --------------------------------------------------------------------------- datasets


def active_dataset():
    """The active dataset, or None after showing why it cannot be opened."""
    path = st.session_state.get(DATASET_KEY) or str(SAMPLE_DATASET)
    with error_boundary(f"The dataset {md_escape(path)} cannot be opened"):
        return dataset_at(path)
    return None


def open_dataset_from_user(text: str):
    """Check a user-typed path against the data roots, open it and make it active.

    Returns the dataset; raises PatchLensError (a message for the user) when it cannot be opened.
    """
    path = str(check_allowed(text, extra_roots()))
    dataset = dataset_at(path)
    st.session_state[DATASET_KEY] = path
    return dataset


# --------------------------------------------------------------------------- models


NO_MODEL = "No model is active. Choose one in the sidebar or train one on the Train page."


def required_model_path() -> str:
    """The active model's path; without one, say so and stop the page."""
    path = active_model_path()
    if path is None:
        st.warning(NO_MODEL)
        st.stop()
    return path


def active_model_path() -> str | None:
    path = st.session_state.get(MODEL_KEY)
    if path and Path(path).exists():
        return path
    return None


def load_active_model():
    """The active Keras model, shared by every session (cache_resource), or None with a message."""
    path = active_model_path()
    if path is None:
        st.warning("No model is active. Train one on the Train page or restore models/baseline.keras.")
        return None
    with error_boundary():
        return model_at(path)
    return None


def model_label(path: str | None) -> str:
    if not path:
        return "none"
    p = Path(path)
    if p == BASELINE_MODEL:
        return "bundled baseline"
    return p.parent.name if p.name in (FINAL_MODEL_FILE, CHECKPOINT_FILE) else p.name


def dataset_label(path: str | None) -> str:
    if not path:
        return "none"
    p = Path(path)
    return "bundled sample" if p == SAMPLE_DATASET else p.name


def model_options() -> dict[str, str]:
    """{model path: label} of every model the sidebar offers, the active one included."""
    options = {}
    if BASELINE_MODEL.exists():
        options[str(BASELINE_MODEL)] = "bundled baseline"
    for run in list_runs():
        if run.has_model:
            suffix = "" if run.state == "finished" else f" ({run.state})"
            options[str(run.model_path)] = f"run {run.name}{suffix}"
    current = st.session_state.get(MODEL_KEY)
    if current and current not in options:
        options[current] = model_label(current)
    return options


# --------------------------------------------------------------------------- the sidebar's actions


def _open_typed_dataset() -> None:
    """Callback of Open: runs before the script, so the whole next run shows the new dataset."""
    text = (st.session_state.get(OPEN_PATH_KEY) or "").strip()
    if not text:
        notice("open", "error", "Enter the path of a dataset folder or file.")
        return
    try:
        open_dataset_from_user(text)
    except PatchLensError as error:
        notice("open", "error", md_escape(error))
        return
    notice("open", "success", f"Opened {md_escape(text)}")


def _model_picked() -> None:
    st.session_state[MODEL_KEY] = st.session_state[MODEL_PICKER_KEY]


# --------------------------------------------------------------------------- the sidebar


def render_sidebar() -> None:
    """The dataset and model pickers and the data-roots setting, drawn by every page.

    Drawn from the page (not the entry script): AppTest drops entry-script sidebar elements on reruns.
    Also keeps the URL in step with the active dataset and model.
    """
    init_state()
    show_notices("main")
    with st.sidebar:
        _dataset_picker()
        _model_picker()
        roots_setting()
    sync_url()


def _dataset_picker() -> None:
    st.markdown("### Active dataset")
    st.caption(md_escape(dataset_label(st.session_state[DATASET_KEY])))
    st.text_input(
        "Open a dataset by path",
        key=OPEN_PATH_KEY,
        placeholder="/path/to/kaggle-folder, PCam .h5 folder, or class folders",
        help="Kaggle folder of .tif + train_labels.csv, PCam HDF5 files, class folders 0/ and 1/, "
        "or a cache .h5. Only paths inside the data roots can be opened.",
    )
    st.button("Open", key="open_dataset", on_click=_open_typed_dataset)
    show_notices("open")


def _model_picker() -> None:
    st.markdown("### Active model")
    options = model_options()
    if not options:
        st.caption("No model yet: train one on the Train page.")
        return
    if st.session_state.get(MODEL_KEY) not in options:
        st.session_state[MODEL_KEY] = next(iter(options))
    # Keyed, and set from MODEL_KEY before it is drawn: a change made elsewhere (e.g. the Train
    # page's "Make … the active model" callback) shows in this same run.
    st.session_state[MODEL_PICKER_KEY] = st.session_state[MODEL_KEY]
    st.selectbox(
        "Model",
        list(options),
        format_func=options.get,
        key=MODEL_PICKER_KEY,
        on_change=_model_picked,
        label_visibility="collapsed",
    )
