"""Shared by the page tests: a tiny real dataset, a real finished run, and an AppTest on the app.

Not a test module (no test_ prefix): the page tests import it. Everything is real — real patches
from data/sample, a real (tiny) model trained by core.train.job.run_training — and small enough to
keep each test file well under a minute on two shared cores.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from core.settings import PROJECT_DIR, SAMPLE_DATASET
from ui.frame import PAGES

# AppTest.switch_page takes a page by its script: {"home": "streamlit_app.py", "label_issues": "pages/7_label_issues.py", …}
PAGE_SCRIPTS = {entry.title.lower().replace(" ", "_"): entry.script for entry in PAGES}

APP = str(PROJECT_DIR / "streamlit_app.py")
RUN_TIMEOUT = 120  # seconds for one script run: TensorFlow import + a model load on a busy machine


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


def finished_run(workspace: Path, data: Path, name: str = "tiny-run", epochs: int = 2) -> Path:
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


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)


def open_page(workspace: Path, page: str, *, model: Path | None = None):
    """An AppTest of the real app with PATCHLENS_HOME already pointing at `workspace`, on `page`
    (with `model` as the session's active model when given)."""
    at = app_test()
    if model is not None:
        at.session_state["model_path"] = str(model)
    at.run()
    at.switch_page(PAGE_SCRIPTS[page])
    at.run()
    assert not at.exception, at.exception
    return at


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
