"""Datasets for the training-overlap tests (issue 19, item 3): a run's own patches under another path
and layout, and copies of some of its patches, so that only their pixels say the run trained on them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_pcam_split

from core.data.dataset import open_dataset
from core.evaluate.predictions import read_predictions


def run_data(run_dir: Path) -> Path:
    """The dataset the run trained on (its config's first `data`)."""
    return Path(json.loads((run_dir / "config.json").read_text())["data"][0])


def training_ids(run_dir: Path) -> set[str]:
    """The run's training patches: its labelled data minus its validation split."""
    validation = set(read_predictions(run_dir / "val_predictions.csv")["id"])
    return set(open_dataset(run_data(run_dir)).ids) - validation


def as_pcam_hdf5(source: Path, target: Path, ids: set[str] | None = None) -> Path:
    """The patches of `source` (those in `ids`, else all) rewritten in PCam's HDF5 layout at `target`."""
    dataset = open_dataset(source)
    rows = [k for k, item in enumerate(dataset.ids) if ids is None or item in ids]
    write_pcam_split(target, "valid", dataset.read_batch(rows), dataset.labels[rows])
    return target
