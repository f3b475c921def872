"""Shared by the page tests: a tiny real dataset, a real finished run, and an AppTest on the app.

Not a test module (no test_ prefix): the page tests import it. Everything is real — real patches
from data/sample, a real (tiny) model trained by core.train.job.run_training — and small enough to
keep each test file well under a minute on two shared cores.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import BASELINE_MODEL, PROJECT_DIR, SAMPLE_DATASET
from ui.frame import PAGES

# AppTest.switch_page takes a page by its script: {"home": "streamlit_app.py", "label_issues": "pages/7_label_issues.py", …}
PAGE_SCRIPTS = {entry.title.lower().replace(" ", "_"): entry.script for entry in PAGES}

APP = str(PROJECT_DIR / "streamlit_app.py")
RUN_TIMEOUT = 120  # seconds for one script run: TensorFlow import + a model load on a busy machine
JOB_TIMEOUT_S = 300  # an upper bound for a job process that imports TensorFlow on two busy cores
TINY_RUN = "tiny-run"  # finished_run's run name unless told otherwise


def copy_kaggle_subset(target: Path, n_per_class: int) -> Path:
    """A Kaggle-layout dataset of real bundled patches, balanced."""
    with open(SAMPLE_DATASET / "train_labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["label"] == "0"][:n_per_class] + [r for r in rows if r["label"] == "1"][
        :n_per_class
    ]
    (target / "train").mkdir(parents=True)
    with open(target / "train_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        for row in chosen:
            writer.writerow([row["id"], row["label"]])
            shutil.copy(SAMPLE_DATASET / "train" / f"{row['id']}.tif", target / "train")
    return target


def finished_run(workspace: Path, data: Path, name: str = TINY_RUN, epochs: int = 2) -> Path:
    """A real finished run (config.json, model.keras, val_predictions.csv) in `workspace`/runs.

    The caller must have pointed PATCHLENS_HOME at `workspace`.
    """
    from core.train.job import TrainConfig, run_training

    run_dir = workspace / "runs" / name
    config = TrainConfig(
        data=[str(data)], architecture="tiny", epochs=epochs, batch_size=16, val_fraction=0.5, seed=0
    )
    status = run_training(config, run_dir, verbose=False)
    assert status["state"] == "finished", status
    return run_dir


def run_on_kaggle_copy(workspace: Path, data: Path, n_per_class: int, epochs: int = 2) -> Path:
    """A Kaggle copy of 2 x `n_per_class` real patches at `data` and a real finished run on it in
    `workspace` (PATCHLENS_HOME points there while it trains, for a module fixture). Its run directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(workspace))
        copy_kaggle_subset(data, n_per_class)
        return finished_run(workspace, data, epochs=epochs)


def copy_workspace(source: tuple[Path, Path], target: Path) -> tuple[Path, Path]:
    """(workspace, run dir) of a copy of `source`'s workspace at `target`/workspace: a module's own
    copy of a run shared by the session, free to change."""
    workspace, run_dir = source
    copied = Path(shutil.copytree(workspace, target / "workspace"))
    return copied, copied / run_dir.relative_to(workspace)


def finished_run_dir(workspace: Path, name: str, config: dict) -> Path:
    """`workspace`/runs/`name` with `config` as its config.json and a finished status; the caller
    puts the model in it."""
    run_dir = workspace / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "status.json").write_text(json.dumps({"state": "finished"}))
    return run_dir


def baseline_run(workspace: Path, name: str) -> Path:
    """A finished run whose model is a copy of the bundled baseline (no training); its model file."""
    run_dir = finished_run_dir(workspace, name, {"architecture": "patchnet", "data": [], "epochs": 1})
    return Path(shutil.copy(BASELINE_MODEL, run_dir / "model.keras"))


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)


def open_page(workspace: Path, page: str, *, model: Path | None = None, dataset: Path | None = None):
    """An AppTest of the real app with PATCHLENS_HOME already pointing at `workspace`, on `page`
    (with `model` and `dataset` as the session's active model and dataset when given)."""
    at = app_test()
    if model is not None:
        at.session_state["model_path"] = str(model)
    if dataset is not None:
        at.session_state["dataset_path"] = str(dataset)
    at.run()
    at.switch_page(PAGE_SCRIPTS[page])
    at.run()
    assert not at.exception, at.exception
    return at


def page_on_run(workspace_and_run: tuple[Path, Path], page: str, monkeypatch) -> tuple:
    """(AppTest, run dir): `page` with PATCHLENS_HOME at the workspace and the run's validation
    predictions chosen as the source."""
    workspace, run_dir = workspace_and_run
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    at = open_page(workspace, page)
    at.radio(key="prediction_source_kind").set_value("run").run()
    return at, run_dir


def tiny_model(path: Path, n_patches: int = 60) -> Path:
    """A tiny real model fitted for 2 epochs on `n_patches` real sample patches, saved to `path`."""
    import numpy as np

    from core.data.images import decode_patch
    from core.model.architectures import build_model
    from core.model.io import save_model

    with open(SAMPLE_DATASET / "train_labels.csv") as handle:
        rows = list(csv.DictReader(handle))[:n_patches]
    patches = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{r['id']}.tif") for r in rows]).astype(
        "float32"
    )
    labels = np.array([float(r["label"]) for r in rows], dtype="float32")
    model = build_model("tiny", seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(patches, labels, epochs=2, batch_size=16, verbose=0)
    return save_model(model, path)


def wait_for_job_end(read_job: Callable[[str], dict | None], key: str) -> dict:
    """The job `key` once it has ended (neither queued nor running), read with its layer's `read_job`."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = read_job(key)
        if job and job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"the job did not end: {read_job(key)}")


def png_bytes(pixels) -> bytes:
    """An RGB uint8 array encoded as a PNG file, as a browser would upload it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
