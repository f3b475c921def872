"""The actions on one training run the Train page offers below its runs table: make its model the
active one, resume it from its best checkpoint (asking the new epochs first), delete it (asking to
confirm first). Every action runs in an on_click callback, before anything is drawn, and leaves its
message for the next drawing (ui.notices, place "train_runs"); runs are named, never numbered.

Session state keys:
  train_confirm_delete   the run directory a Delete click asks to confirm
  train_resume_run       the run directory a Resume click asks the new epochs for
  resume_epochs, resume_swa_epochs   the Resume panel's fields
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.errors import PatchLensError, RunError
from core.train.runs import ACTIVE_STATES, RunSummary, delete_run, summarize_run
from ui.frame import model_pages
from ui.notices import notice
from ui.shared import MODEL_KEY, default_model
from ui.text import md_escape
from ui.train_watch import WATCHED_KEY

NOTICE_PLACE = "train_runs"
SELECTED_KEY = "train_selected_runs"  # names of the runs chosen below the table
CONFIRM_KEY = "train_confirm_delete"
RESUME_KEY = "train_resume_run"


def say(level: str, text: str) -> None:
    """Leave `text` (plain: it quotes typed paths and run names) for the next drawing of the runs."""
    notice(NOTICE_PLACE, level, md_escape(text))


def make_active(run_dir: str) -> None:
    try:
        run = summarize_run(run_dir)
    except RunError as error:
        say("warning", str(error))
        return
    if not run.has_model:
        say("warning", f"{run.name} has no model yet.")
        return
    st.session_state[MODEL_KEY] = str(run.model_path)
    say("success", f"{run.name} is now the active model of {model_pages()}.")


def confirm_buttons(label: str, key: str, on_confirm, run_dir: str, on_cancel) -> None:
    """A pending action's two buttons: `label` runs on_confirm(run_dir), Cancel runs on_cancel()."""
    buttons = st.columns(2)
    buttons[0].button(label, type="primary", key=key, on_click=on_confirm, args=(run_dir,))
    buttons[1].button("Cancel", key=f"cancel_{key}", on_click=on_cancel)


def ask_resume(run_dir: str) -> None:
    st.session_state[RESUME_KEY] = run_dir


def cancel_resume() -> None:
    st.session_state.pop(RESUME_KEY, None)


def resume(run_dir: str) -> None:
    """Continue the run the Resume panel names, with the epochs and averaging chosen there."""
    from core.train.job import launch, resume_config

    st.session_state.pop(RESUME_KEY, None)
    state = st.session_state
    try:
        config = resume_config(
            run_dir, epochs=int(state["resume_epochs"]), swa_epochs=int(state["resume_swa_epochs"])
        )
        new_run = launch(config)
    except PatchLensError as error:
        say("error", str(error))
    else:
        st.session_state[WATCHED_KEY] = str(new_run)
        say("success", f"Resumed {Path(run_dir).name} as {new_run.name}.")


def resume_panel(runs: dict[str, RunSummary]) -> None:
    """The pending Resume: the new total of epochs and the weight averaging, asked before it starts."""
    from core.train.resume import checkpoint_epoch

    pending = st.session_state.get(RESUME_KEY)
    run = runs.get(Path(pending).name) if pending else None
    if run is None or not run.resumable:
        st.session_state.pop(RESUME_KEY, None)
        return
    try:
        done = checkpoint_epoch(run.path)
    except RunError as error:
        st.warning(str(error))
        return
    with st.container(border=True):
        st.markdown(f"**Resume {md_escape(run.name)}** from its best checkpoint, saved after epoch {done}.")
        columns = st.columns(2)
        columns[0].number_input(
            f"Epochs in total (more than {done})",
            done + 1,
            500,
            max(run.epochs, done + 1),
            key="resume_epochs",
            help="Counted as in the first run: epochs after the checkpoint's train in the new run.",
        )
        columns[1].number_input(
            "Average the weights of its last N epochs (0 = off)",
            0,
            499,
            int(run.config.get("swa_epochs") or 0),
            key="resume_swa_epochs",
        )
        confirm_buttons(
            f"Start resumed run of {md_escape(run.name)}", "start_resume", resume, pending, cancel_resume
        )


def ask_delete(run_dir: str) -> None:
    st.session_state[CONFIRM_KEY] = run_dir


def cancel_delete() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def forget_run(run_dir: Path) -> None:
    """Drop a deleted run from this session: selection, watched job and active model."""
    state = st.session_state
    state[SELECTED_KEY] = [name for name in state.get(SELECTED_KEY, []) if name != run_dir.name]
    if state.get(WATCHED_KEY) == str(run_dir):
        state.pop(WATCHED_KEY, None)
    model = state.get(MODEL_KEY)
    if model and Path(model).parent == run_dir:
        state[MODEL_KEY] = default_model()


def confirm_delete(run_dir: str) -> None:
    """Delete exactly the run the confirmation named."""
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        delete_run(run_dir)
    except RunError as error:
        say("warning", str(error))
        return
    forget_run(Path(run_dir))
    say("success", f"Deleted {Path(run_dir).name}.")


def confirm_panel(runs: dict[str, RunSummary]) -> None:
    """The pending Delete, if its run still exists (one deleted elsewhere is forgotten silently)."""
    pending = st.session_state.get(CONFIRM_KEY)
    if pending is None:
        return
    name = Path(pending).name
    if name not in runs:
        st.session_state.pop(CONFIRM_KEY, None)
        return
    st.warning(
        f"Delete run {md_escape(name)} and all its files (models, curves, predictions)? This cannot be undone."
    )
    confirm_buttons(
        f"Confirm delete {md_escape(name)}", "confirm_delete", confirm_delete, pending, cancel_delete
    )


def run_actions(target: RunSummary) -> None:
    # a row that sizes each button to its label (wrapping when short of room): three equal
    # columns clipped "Make 2026…-patchnet the active model"
    actions = st.container(horizontal=True)
    actions.button(
        f"Make {md_escape(target.name)} the active model",
        key="make_active",
        disabled=not target.has_model,
        on_click=make_active,
        args=(str(target.path),),
    )
    actions.button(
        f"Delete {md_escape(target.name)}",
        key="delete_run",
        disabled=target.state in ACTIVE_STATES,
        on_click=ask_delete,
        args=(str(target.path),),
    )
    actions.button(
        f"Resume {md_escape(target.name)}",
        key="resume_run",
        disabled=not target.resumable,
        help="Continue a failed or stopped run from its best checkpoint, in a new run; asks for the "
        "number of epochs and the weight averaging first.",
        on_click=ask_resume,
        args=(str(target.path),),
    )
