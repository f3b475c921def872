"""How a run is shown: the progress of a queued or running job in words, and its curves in long form
for plotting (the Train page, the CLI's cross-validation progress). Pure functions of status.json and
metrics.jsonl records as core.train.records validates them."""

from __future__ import annotations

from core.jobs.status import QUEUED_PHASE
from core.train.pace import eta_words

STARTING_TEXT = "starting TensorFlow…"


def run_progress(status: dict) -> tuple[float, str]:
    """How far a queued or running job is, as a fraction in [0, 1] and a line of text.

    Queued, it waits for a free worker. Before the first batch has reported (importing TensorFlow,
    preparing data, tracing the model) there is no step count to show: the text says what the job is
    doing instead.
    """
    progress = status.get("progress") or {}
    phase = status.get("phase") or ""
    epoch, step = progress.get("epoch") or 0, progress.get("step") or 0
    if status.get("state") == "queued":
        return 0.0, QUEUED_PHASE
    if epoch < 1 or step < 1:
        early = phase and phase not in ("starting", "building the model", "training")
        return 0.0, f"{phase}…" if early else STARTING_TEXT
    epochs, steps = max(progress.get("epochs") or epoch, 1), max(progress.get("steps") or step, 1)
    fraction = min(max((epoch - 1 + step / steps) / epochs, 0.0), 1.0)
    text = (
        f"epoch {epoch}/{epochs} · step {step}/{steps} · {progress.get('patches_per_s') or 0:.0f} patches/s"
        f" · {eta_words(progress.get('eta_s'))}"
    )
    if phase and phase != "training":
        text += f" · {phase}…"
    return fraction, text


WEIGHT_AVERAGE = "validation, weight average"  # the split of a run's averaged weights in curves_long
RUNNING, WITHIN_EPOCHS = "train (running)", "train, within epochs"  # the split of batch-window lines
PARTIAL = "train, stopped part-epoch"  # the split of a stopped epoch's training metrics, never validated


def curves_long(records: list[dict], run_name: str = "", *, running: bool = False) -> object:
    """Long-form curves for plotting: columns run, epoch, metric (loss/accuracy/auc), split, value.

    Batch-window lines give the training curve inside an epoch (fractional epochs), so a chart grows
    while the first epoch runs: split RUNNING while the job runs, WITHIN_EPOCHS once it has ended.
    Epoch lines give the per-epoch points; a stopped part of an epoch is one PARTIAL point at the step
    it reached, with no validation; a weight average (core.train.averaging) is one point of split
    WEIGHT_AVERAGE at the last epoch it averages.
    """
    import pandas as pd

    rows = []
    for r in records:
        if r.get("kind") in ("batch", "partial_epoch"):
            x = r["epoch"] - 1 + r["step"] / max(r["steps"], 1)
            split = PARTIAL if r["kind"] == "partial_epoch" else RUNNING if running else WITHIN_EPOCHS
            for metric in ("loss", "accuracy"):
                if r.get(metric) is not None:
                    rows.append((run_name, x, metric, split, r[metric]))
        elif r.get("kind") == "epoch":
            for metric in ("loss", "accuracy", "auc"):
                for split, key in (("train", metric), ("validation", f"val_{metric}")):
                    if r.get(key) is not None:
                        rows.append((run_name, float(r["epoch"]), metric, split, r[key]))
        elif r.get("kind") == "swa":  # the weight average's validation, at its last epoch
            for metric in ("loss", "accuracy", "auc"):
                if r.get(f"val_{metric}") is not None:
                    rows.append(
                        (run_name, float(r["last_epoch"]), metric, WEIGHT_AVERAGE, r[f"val_{metric}"])
                    )
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "split", "value"])


def outcome_words(status: dict) -> str:
    """How a run that has ended went, in one paragraph: where a stopped run stopped and how many epochs
    are complete, which run a resumed one continues, the best validation AUC and its epoch, the weight
    average and the calibration. `status` is status.json as core.train.runs.read_status gives it."""
    if status["state"] == "failed":
        return f"The job failed: {status.get('error')}"
    parts = [_ending(status), _epochs_here(status), _best(status), _averaging(status.get("swa"))]
    if status.get("temperature") not in (None, 1.0):
        parts.append(
            f"Probabilities calibrated on the validation set (temperature {status['temperature']:.3f})."
        )
    return " ".join(part for part in parts if part)


def _ending(status: dict) -> str:
    """How long the run took and how far it got; a run stopped early says where, and how many of its
    epochs are complete (a part-epoch does not count)."""
    minutes = f"{(status.get('duration_s') or 0) / 60:.1f} min"
    stopped, epochs = status.get("stopped_at"), (status.get("progress") or {}).get("epochs") or "?"
    if not stopped:
        return f"Finished in {minutes}: {(status.get('progress') or {}).get('epoch') or '?'}/{epochs} epochs."
    where = f"in epoch {stopped['epoch']} at step {stopped['step']}/{stopped['steps']}"
    complete = f"{stopped['epochs_complete']} of {epochs} epochs complete"
    return f"Stopped ({status.get('note') or 'stopped by the user'}) {where} after {minutes}; {complete}."


def _epochs_here(status: dict) -> str:
    """For a resumed run: the run it continues and the epochs it trained, in the original numbering."""
    if not status.get("resumed_from"):
        return ""
    first = status.get("first_epoch") or 1
    stopped = status.get("stopped_at")
    last = stopped["epochs_complete"] if stopped else (status.get("progress") or {}).get("epoch") or first
    trained = f"epochs {first}–{last} in this run" if last >= first else "no complete epoch in this run"
    return f"Resumed from {status['resumed_from']} at epoch {first}: {trained}."


def _best(status: dict) -> str:
    best = status.get("best") or {}
    if best.get("val_auc") is None:
        return "No epoch was completed and validated, so there is no checkpoint."
    kept = " Its checkpoint is kept to resume from." if status["state"] != "finished" else ""
    return f"Best val AUC {best['val_auc']:.4f} at epoch {best.get('epoch')}.{kept}"


def _averaging(swa: dict | None) -> str:
    """A sentence on the run's weight average, if it made one (core.train.averaging)."""
    if not swa:
        return ""
    verdict = (
        "the model is this average"
        if swa["adopted"]
        else "the best epoch is kept (the average: averaged.keras)"
    )
    auc = swa.get("val_auc")
    return (
        f"Weights averaged over epochs {swa['first_epoch']}–{swa['last_epoch']}: "
        f"val AUC {auc if auc is None else f'{auc:.4f}'}, so {verdict}."
    )
