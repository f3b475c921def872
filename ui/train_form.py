"""The Train page's form for a new training job: every TrainConfig field a user sets, checked
paths, and the Start button that launches the job (core.train.job.launch) in its own process.

Defaults come from TrainConfig and AugmentConfig (their one home); paths are checked against the data
roots. Enter in a box never starts a job: only the button does, in an on_click callback, before the
page is drawn again, so the new job shows at once under "Current job".

Session state keys: the form's widgets (train_data, train_val_mode, …, arch, epochs, batch_size), and
the watched run (ui.train_watch.WATCHED_KEY), which a start sets.
"""

from __future__ import annotations

from dataclasses import fields
from inspect import signature

import streamlit as st

from core.errors import PatchLensError
from core.model.architectures import ARCHITECTURES, IMAGENET, NO_WEIGHTS, WEIGHTS_HELP
from core.model.augment import AugmentConfig
from core.settings import check_allowed
from core.train.config import SCHEDULES, STAIN_NORMALISATIONS, TrainConfig
from ui.notices import notice, show_notices
from ui.shared import DATASET_KEY, extra_roots
from ui.text import md_escape
from ui.train_watch import WATCHED_KEY

NOTICE_PLACE = "train_start"  # where the Start callback's message shows (ui.notices)
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
AUGMENT_DEFAULTS = AugmentConfig()
JITTER_DEFAULT = signature(AugmentConfig.with_strength).parameters["colour"].default
BATCH_SIZES = sorted({16, 32, 64, 128, 256, DEFAULTS["batch_size"]})
LEARNING_RATES = sorted({1e-4, 3e-4, 1e-3, 3e-3, DEFAULTS["learning_rate"]})
HOLD_OUT, SEPARATE = "hold out a fraction", "a separate dataset"


def train_form() -> None:
    """The form, its Start button and the message the last start left."""
    with st.form("train_config", enter_to_submit=False):
        _data_fields()
        _model_fields()
        _schedule_fields()
        _augment_fields()
        _size_fields()
        st.checkbox(
            "Calibrate the probabilities on the validation set (temperature scaling)",
            DEFAULTS["calibrate"],
            key="train_calibrate",
            help="Fits one temperature on the validation patches and folds it into the final model, so "
            "its probabilities match how often it is right. The ranking (AUC) and the 0.5 call do not change.",
        )
        st.form_submit_button("Start training", type="primary", on_click=start_job)
    show_notices(NOTICE_PLACE)


# --------------------------------------------------------------------------- starting the job


def start_job() -> None:
    """The Start click: launch the job the form describes and watch it, or say why not."""
    from core.train.job import launch

    try:
        run_dir = launch(config_from_form())
    except PatchLensError as error:
        notice(NOTICE_PLACE, "error", md_escape(error))
    else:
        st.session_state[WATCHED_KEY] = str(run_dir)
        notice(
            NOTICE_PLACE, "success", f"Started {md_escape(run_dir.name)}. Its progress and curves show above."
        )


def config_from_form() -> TrainConfig:
    """The TrainConfig the form describes; paths are checked against the data roots."""
    state = st.session_state
    paths = [
        str(check_allowed(line, extra_roots())) for line in state["train_data"].splitlines() if line.strip()
    ]
    validation = None
    if state["train_val_mode"] == SEPARATE:
        validation = str(check_allowed(state["train_val_path"], extra_roots()))
    return TrainConfig(
        data=paths,
        val_data=validation,
        val_fraction=float(state["train_val_fraction"]),
        architecture=state["arch"],
        weights=weights_from_form(state["train_weights"]),
        epochs=int(state["epochs"]),
        batch_size=int(state["batch_size"]),
        learning_rate=float(state["train_learning_rate"]),
        schedule=state["train_schedule"],
        early_stopping_patience=int(state["train_patience"]),
        class_weighting=bool(state["train_class_weighting"]),
        calibrate=bool(state["train_calibrate"]),
        swa_epochs=int(state["train_swa_epochs"]),
        seed=int(state["train_seed"]),
        max_minutes=float(state["train_max_minutes"]) or None,
        limit=int(state["train_limit"]) or None,
        stain_normalisation=state["train_stain_norm"],
        augment=AugmentConfig.with_strength(
            state["train_jitter"], dihedral=state["train_dihedral"], hed=state["train_hed"]
        ),
    )


def weights_from_form(text: str) -> str:
    """none or imagenet as typed; a weights file only inside the data roots."""
    text = text.strip() or NO_WEIGHTS
    return text if text in (NO_WEIGHTS, IMAGENET) else str(check_allowed(text, extra_roots()))


# --------------------------------------------------------------------------- the form's sections


def _data_fields() -> None:
    """The training datasets and how validation is chosen."""
    st.text_area(
        "Training dataset(s), one path a line",
        value=st.session_state[DATASET_KEY],
        key="train_data",
        help="Any supported layout. Each is converted once into an HDF5 cache in the workspace.",
    )
    columns = st.columns(3)
    columns[0].radio("Validation", [HOLD_OUT, SEPARATE], key="train_val_mode")
    columns[1].slider(
        "Held-out fraction", 0.05, 0.5, DEFAULTS["val_fraction"], 0.05, key="train_val_fraction"
    )
    columns[2].text_input(
        "Validation dataset path", key="train_val_path", help="Its ids are excluded from training."
    )


def _model_fields() -> None:
    """Architecture, epochs, batch size, learning rate and backbone weights."""
    columns = st.columns(4)
    columns[0].selectbox(
        "Architecture",
        list(ARCHITECTURES),
        index=list(ARCHITECTURES).index(DEFAULTS["architecture"]),
        key="arch",
        help="\n\n".join(f"**{a.name}**: {a.description}" for a in ARCHITECTURES.values()),
    )
    columns[1].number_input("Epochs", 1, 500, DEFAULTS["epochs"], key="epochs")
    columns[2].select_slider("Batch size", BATCH_SIZES, DEFAULTS["batch_size"], key="batch_size")
    columns[3].select_slider(
        "Learning rate", LEARNING_RATES, DEFAULTS["learning_rate"], key="train_learning_rate"
    )
    st.text_input(
        "Backbone weights",
        DEFAULTS["weights"],
        key="train_weights",
        help=f"For the Keras Applications backbones only: {WEIGHTS_HELP}.",
    )


def _schedule_fields() -> None:
    """Schedule, early stopping, seed and time budget."""
    columns = st.columns(4)
    columns[0].selectbox(
        "Schedule",
        SCHEDULES,
        index=SCHEDULES.index(DEFAULTS["schedule"]),
        key="train_schedule",
        help="Cosine decays to 2 % over all epochs; with weight averaging, to a fifth of the start "
        "over the epochs before the averaged ones.",
    )
    columns[1].number_input(
        "Early stopping patience (0 = off)",
        0,
        100,
        DEFAULTS["early_stopping_patience"],
        key="train_patience",
    )
    columns[2].number_input(
        "Seed",
        0,
        2**31 - 1,
        DEFAULTS["seed"],
        key="train_seed",
        help="Same seed + same data → same metrics.",
    )
    columns[3].number_input(
        "Time budget, minutes (0 = none)",
        0.0,
        10000.0,
        float(DEFAULTS["max_minutes"] or 0),
        key="train_max_minutes",
    )


def _augment_fields() -> None:
    """Augmentation and class weighting."""
    columns = st.columns(4)
    columns[0].checkbox("Flips + 90° turns", AUGMENT_DEFAULTS.dihedral, key="train_dihedral")
    columns[1].slider(
        "Colour jitter strength",
        0.0,
        2.0,
        float(JITTER_DEFAULT),
        0.25,
        key="train_jitter",
        help="Brightness/contrast/saturation/hue, standing in for stain variation.",
    )
    columns[2].slider("HED stain jitter", 0.0, 0.1, AUGMENT_DEFAULTS.hed, 0.01, key="train_hed")
    columns[3].checkbox("Class weighting", DEFAULTS["class_weighting"], key="train_class_weighting")


def _size_fields() -> None:
    """Weight averaging, a patch limit and stain normalisation."""
    columns = st.columns(3)
    columns[2].number_input(
        "Average the weights of the last N epochs (0 = off)",
        0,
        499,
        DEFAULTS["swa_epochs"],
        key="train_swa_epochs",
        help="Stochastic weight averaging: the learning rate decays to a fifth of its start over the "
        "epochs before, stays there for these N, and the model becomes the mean of their weights "
        "if that validates at least as well as the best epoch. Often steadier on new slides.",
    )
    columns[0].number_input(
        "Use at most this many training patches (0 = all)",
        0,
        10_000_000,
        int(DEFAULTS["limit"] or 0),
        key="train_limit",
    )
    columns[1].selectbox(
        "Stain normalisation",
        STAIN_NORMALISATIONS,
        index=STAIN_NORMALISATIONS.index(DEFAULTS["stain_normalisation"]),
        key="train_stain_norm",
        help="Macenko or Reinhard, fitted on a typical training patch, stored in the model and "
        "applied wherever the model scores a patch (prediction, evaluation, Grad-CAM).",
    )
