"""Train: configure and start a job, watch it live, stop it, compare and manage runs.

The job runs in its own process (core.train.job.launch); this page only reads its files, refreshed
by a fragment every few seconds, so reruns and browser reloads never disturb training. When the
watched job changes state the fragment redraws the whole page, so the runs table, the buttons and
the sidebar never show a state that is gone. Every action that changes what the page or the sidebar
shows (start, make active, resume, delete) runs in an on_click callback, before anything is drawn.
Runs are chosen by name, never by row number.
"""

from dataclasses import fields
from inspect import signature
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core.constants import SPLIT_WARNING
from core.errors import PatchLensError, RunError
from core.model.architectures import ARCHITECTURES, IMAGENET, NO_WEIGHTS, WEIGHTS_HELP
from core.model.augment import AugmentConfig
from core.settings import check_allowed
from core.train.config import SCHEDULES, STAIN_NORMALISATIONS, TrainConfig
from core.train.runs import (
    ACTIVE_STATES,
    RunSummary,
    active_run,
    delete_run,
    list_runs,
    read_metrics,
    read_status,
    request_stop,
    summarize_run,
)
from core.train.views import RUNNING, WITHIN_EPOCHS, curves_long, outcome_words, run_progress
from ui.frame import model_pages, page
from ui.shared import DATASET_KEY, MODEL_KEY, default_model, extra_roots
from ui.text import md_escape

WATCHED_KEY = "watched_run"  # the run directory shown under "Current job"
DRAWN_KEY = "train_drawn_state"  # (run name, state) of the watched run when the page was last drawn
SELECTED_KEY = "train_selected_runs"  # names of the runs chosen below the table
CONFIRM_KEY = "train_confirm_delete"  # the run directory a Delete click asks to confirm
RESUME_KEY = "train_resume_run"  # the run directory a Resume click asks the new epochs for
START_NOTICE_KEY = "train_start_notice"  # (kind, text) left by the Start callback for one drawing
RUNS_NOTICE_KEY = "train_runs_notice"  # (kind, text) left by a run action for one drawing
REFRESH_SECONDS = 2.0

DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
AUGMENT_DEFAULTS = AugmentConfig()
JITTER_DEFAULT = signature(AugmentConfig.with_strength).parameters["colour"].default
BATCH_SIZES = sorted({16, 32, 64, 128, 256, DEFAULTS["batch_size"]})
LEARNING_RATES = sorted({1e-4, 3e-4, 1e-3, 3e-3, DEFAULTS["learning_rate"]})
HOLD_OUT, SEPARATE = "hold out a fraction", "a separate dataset"

with page("Train"):
    st.caption(SPLIT_WARNING)

    # ---------------------------------------------------------------- notices left by callbacks

    def notify(key: str, kind: str, text: str) -> None:
        st.session_state[key] = (kind, text)

    def show_notice(key: str) -> None:
        """Draw a callback's message once: the next drawing of the page no longer shows it."""
        notice = st.session_state.pop(key, None)
        if notice:
            kind, text = notice
            getattr(st, kind)(md_escape(text))  # the text quotes typed paths and run names

    # ---------------------------------------------------------------- the current job

    def curves_figure(curves: pd.DataFrame, colour: str = "split"):
        figure = px.line(
            curves,
            x="epoch",
            y="value",
            color=colour,
            facet_col="metric",
            markers=True,
            line_dash="split" if colour != "split" else None,
        )
        figure.update_yaxes(matches=None, showticklabels=True)
        figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        figure.update_layout(height=340, margin=dict(t=30, b=20), legend_title_text="")
        return figure

    def watched_run() -> Path | None:
        """The running job if there is one, else the run last started or resumed in this session."""
        running = active_run()
        if running is not None:
            st.session_state[WATCHED_KEY] = str(running)
        watched = st.session_state.get(WATCHED_KEY)
        return Path(watched) if watched else None

    def watched_state() -> tuple[str, str | None] | None:
        run_dir = watched_run()
        if run_dir is None:
            return None
        try:
            return run_dir.name, read_status(run_dir).get("state")
        except RunError:
            return run_dir.name, None

    def show_outcome(status: dict) -> None:
        """How the run ended (core.train.views.outcome_words), coloured by its state."""
        kind = {"failed": st.error, "stopped": st.warning}.get(status["state"], st.success)
        kind(md_escape(outcome_words(status)))

    def show_run(run_dir: Path) -> None:
        """Status, progress, warning and live curves of one run."""
        try:
            status = read_status(run_dir)
        except RunError as error:
            st.warning(md_escape(error))
            st.session_state.pop(WATCHED_KEY, None)
            return
        state = status["state"]
        header = st.columns([3, 1])
        resumed = f" · resumed from {md_escape(status['resumed_from'])}" if status.get("resumed_from") else ""
        header[0].markdown(f"**{md_escape(run_dir.name)}** — {state} · {md_escape(status.get('phase') or '')}{resumed}")
        if state in ACTIVE_STATES:
            if header[1].button("Stop", type="primary", key=f"stop-{run_dir.name}"):
                request_stop(run_dir)
                st.toast(
                    "Stop requested: the job stops after its current batch and keeps its best checkpoint."
                )
            fraction, text = run_progress(status)
            st.progress(fraction, text=text)
        else:
            show_outcome(status)
        if status.get("warning"):
            st.warning(md_escape(status["warning"]))
        if status.get("damaged"):
            st.warning(f"damaged: {md_escape(status['damaged'])}")
        for note in status.get("notes") or []:
            st.caption(md_escape(note))
        curves = curves_long(read_metrics(run_dir), running=state in ACTIVE_STATES)
        if curves.empty:
            st.caption("Waiting for the first batches…")
        else:
            st.plotly_chart(curves_figure(curves), width="stretch", key=f"live-{run_dir.name}")

    def live_panel() -> None:
        """The watched job, redrawn every REFRESH_SECONDS while it is queued or running, then once it
        has ended. No refresh while nothing runs: any fragment rerun closed the list the user had open
        on the page (the run picker) every two seconds. So an idle page shows a job started in another
        session at its next rerun (a click, a reload), and the running job's panel redraws the whole
        page when the job ends."""
        drawn = st.session_state.get(DRAWN_KEY)
        active = drawn is not None and drawn[1] in ACTIVE_STATES
        st.fragment(_live_panel_body, run_every=REFRESH_SECONDS if active else None)()

    def _live_panel_body() -> None:
        if watched_state() != st.session_state.get(DRAWN_KEY):
            st.rerun()  # the job started, ended or vanished: redraw the table, buttons and sidebar too
        run_dir = watched_run()
        if run_dir is None:
            st.info("No job is running. Configure one below.")
            return
        show_run(run_dir)

    # ---------------------------------------------------------------- a new job

    def config_from_form() -> TrainConfig:
        """The TrainConfig the form describes; paths are checked against the data roots."""
        state = st.session_state
        paths = [
            str(check_allowed(line, extra_roots()))
            for line in state["train_data"].splitlines()
            if line.strip()
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

    def start_job() -> None:
        from core.train.job import launch

        try:
            run_dir = launch(config_from_form())
        except PatchLensError as error:
            notify(START_NOTICE_KEY, "error", str(error))
        else:
            st.session_state[WATCHED_KEY] = str(run_dir)
            notify(
                START_NOTICE_KEY, "success", f"Started {run_dir.name}. Its progress and curves show above."
            )

    def train_form() -> None:
        # Enter in a box must not start a job: only the button does.
        with st.form("train_config", enter_to_submit=False):
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
            st.checkbox(
                "Calibrate the probabilities on the validation set (temperature scaling)",
                DEFAULTS["calibrate"],
                key="train_calibrate",
                help="Fits one temperature on the validation patches and folds it into the final model, so "
                "its probabilities match how often it is right. The ranking (AUC) and the 0.5 call do not change.",
            )
            st.form_submit_button("Start training", type="primary", on_click=start_job)
        show_notice(START_NOTICE_KEY)

    # ---------------------------------------------------------------- the runs

    def make_active(run_dir: str) -> None:
        try:
            run = summarize_run(run_dir)
        except RunError as error:
            notify(RUNS_NOTICE_KEY, "warning", str(error))
            return
        if not run.has_model:
            notify(RUNS_NOTICE_KEY, "warning", f"{run.name} has no model yet.")
            return
        st.session_state[MODEL_KEY] = str(run.model_path)
        notify(
            RUNS_NOTICE_KEY,
            "success",
            f"{run.name} is now the active model of {model_pages()}.",
        )

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
            notify(RUNS_NOTICE_KEY, "error", str(error))
        else:
            st.session_state[WATCHED_KEY] = str(new_run)
            notify(RUNS_NOTICE_KEY, "success", f"Resumed {Path(run_dir).name} as {new_run.name}.")

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
            notify(RUNS_NOTICE_KEY, "warning", str(error))
            return
        forget_run(Path(run_dir))
        notify(RUNS_NOTICE_KEY, "success", f"Deleted {Path(run_dir).name}.")

    def rounded(value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value, digits)

    def epochs_cell(run: RunSummary) -> str:
        """Complete epochs of the total, in the original numbering; where a run stopped early and
        which epochs a resumed run trained itself."""
        text = f"{run.epochs_done}/{run.epochs}"
        if run.epochs_here:
            text += f", epochs {run.epochs_here[0]}–{run.epochs_here[1]} in this run"
        if run.stopped_at and run.stopped_at["step"] < run.stopped_at["steps"]:
            text += f" (stopped in epoch {run.stopped_at['epoch']} at step {run.stopped_at['step']}/{run.stopped_at['steps']})"
        return text

    def warning_cell(run: RunSummary) -> str | None:
        words = [
            f"⚠️ {run.warning}" if run.warning else None,
            f"damaged: {run.problems}" if run.problems else None,
        ]
        return " · ".join(w for w in words if w) or None

    def runs_table(runs: list[RunSummary]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "run": r.name,
                    "status": r.state,
                    "warning": warning_cell(r),
                    "resumed from": r.resumed_from,
                    "architecture": r.architecture,
                    "data": r.data,
                    "epochs": epochs_cell(r),
                    "best val AUC": rounded(r.best_val_auc),
                    "best val accuracy": rounded(r.best_val_accuracy),
                    "duration (min)": None if r.duration_s is None else round(r.duration_s / 60, 1),
                }
                for r in runs
            ]
        )

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

    def runs_section() -> None:
        runs = {r.name: r for r in list_runs()}
        if not runs:
            show_notice(RUNS_NOTICE_KEY)
            st.caption("No runs yet in this workspace.")
            return
        st.dataframe(runs_table(list(runs.values())), hide_index=True, width="stretch", placeholder="—")
        # Runs deleted elsewhere leave the selection silently; new runs never shift it (it holds names).
        st.session_state[SELECTED_KEY] = [n for n in st.session_state.get(SELECTED_KEY, []) if n in runs]
        names = st.multiselect(
            "Choose runs",
            list(runs),
            key=SELECTED_KEY,
            placeholder="Choose runs to compare; the last one chosen is the one the buttons act on",
        )
        show_notice(RUNS_NOTICE_KEY)
        confirm_panel(runs)
        resume_panel(runs)
        if not names:
            st.caption("Choose runs to compare their curves, make one the active model, resume or delete it.")
            return
        chosen = [runs[n] for n in names]
        curves = pd.concat([curves_long(read_metrics(r.path), r.name) for r in chosen], ignore_index=True)
        curves = curves[~curves["split"].isin([RUNNING, WITHIN_EPOCHS])]  # epoch points only
        if not curves.empty:
            st.plotly_chart(curves_figure(curves, colour="run"), width="stretch", key="compare")
        run_actions(chosen[-1])

    st.subheader("Current job")
    st.session_state[DRAWN_KEY] = watched_state()
    live_panel()

    st.subheader("New training job")
    train_form()

    st.subheader("Runs")
    runs_section()
