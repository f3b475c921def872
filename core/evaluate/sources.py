"""Where stored predictions come from and where their patches live: a run's validation predictions (and
whether they were a separate dataset or a random split), the warning when a model is evaluated on its own
training data, and reading patches by id from the datasets a source points to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.constants import SPLIT_WARNING
from core.data.hashes import Overlap
from core.errors import DatasetError, PatchError, PatchLensError
from core.evaluate.predictions import read_predictions

VAL_PREDICTIONS = "val_predictions.csv"


@dataclass(frozen=True)
class ValidationInfo:
    """Where a run's validation predictions came from, and the datasets that hold their patches."""

    separate: bool  # True: a dataset of its own; False: a random split of the training data
    patch_paths: tuple[str, ...]  # where the validation patches can be read, by id
    note: str  # one sentence for the page


def validation_info(config: dict) -> ValidationInfo:
    """Read a run's config.json (as a dict): separate validation dataset or random split."""
    val_data = config.get("val_data")
    data = config.get("data") or []
    data = [data] if isinstance(data, str) else list(data)
    if val_data:
        note = f"The validation set is a separate dataset: {val_data}."
        return ValidationInfo(separate=True, patch_paths=(str(val_data),), note=note)
    fraction = config.get("val_fraction")
    share = f" ({100 * float(fraction):.0f} %)" if fraction else ""
    note = f"The validation set is a random patch-level split{share} of the training data. {SPLIT_WARNING}"
    return ValidationInfo(separate=False, patch_paths=tuple(str(d) for d in data), note=note)


def run_predictions_path(run_dir: str | Path) -> Path | None:
    """The run's stored validation predictions, or None when it has none (yet)."""
    path = Path(run_dir) / VAL_PREDICTIONS
    return path if path.is_file() else None


def load_run_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A run's val_predictions.csv as id,label,prob; DatasetError with the reason when unreadable."""
    path = run_predictions_path(run_dir)
    if path is None:
        raise DatasetError(f"Run {Path(run_dir).name} has no {VAL_PREDICTIONS} yet (is it finished?).")
    try:
        frame = read_predictions(path)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise DatasetError(f"{path} could not be read as predictions ({error}).") from None
    if frame["label"].isna().all():
        raise DatasetError(f"{path} holds no labels, so nothing can be evaluated.")
    return frame


def training_overlap_note(model_config: dict | None, dataset_path: str | Path) -> str | None:
    """The path rule, for models without a training record: a warning when the dataset's path is one the
    model's stored config names as training data, else None."""
    if not model_config:
        return None
    target = Path(dataset_path).resolve()
    data = model_config.get("data") or []
    data = [data] if isinstance(data, str) else data
    if any(Path(d).resolve() == target for d in data):
        if model_config.get("val_data"):
            return (
                f"{target.name} is this model's TRAINING data: these numbers measure fit, not "
                "generalisation. Evaluate on its validation dataset or the run's own predictions."
            )
        return (
            f"{target.name} is this model's training data: most of these patches were trained on "
            "(only a random fraction was held out), so the numbers are far too optimistic. "
            "Use the run's own validation predictions instead."
        )
    return None


NO_RECORD = (
    "This model has no record of its training patches (it was trained before PatchLens kept one), so "
    "whether it saw these patches cannot be told from their pixels"
)


def training_overlap(model_path: str | Path, dataset, ids=None) -> Overlap | None:
    """How many of the dataset's patches (those named by `ids`, else all) the model trained on, by
    pixel content; None when the model has no training record (core.data.hashes)."""
    from core.data.hashes import dataset_hashes, hashes_of_ids, overlap, read_training_hashes
    from core.model.io import resolve_model_path

    training = read_training_hashes(resolve_model_path(model_path))
    if training is None:
        return None
    hashes = dataset_hashes(dataset) if ids is None else hashes_of_ids(dataset, ids)
    return overlap(hashes, training)


def overlap_warning(found: Overlap | None, model_config: dict | None, dataset_path: str | Path) -> str | None:
    """Evaluate's and Compare's words on training overlap: a warning when any evaluated patch was
    trained on, the path rule said as such for a model without a record, else None."""
    if found is None:
        by_path = training_overlap_note(model_config, dataset_path)
        return f"{NO_RECORD}; by the paths in its config: {by_path}" if by_path else None
    if found.pending or found.in_training == 0:
        return None
    return (
        f"{found.sentence} (matched by pixel content): on those the numbers measure fit, not "
        "generalisation, so they read optimistic. Evaluate on patches it never trained on."
    )


def overlap_caption(found: Overlap | None) -> str:
    """One line for every evaluation: the overlap counted, or that it cannot be told."""
    if found is None:
        return f"{NO_RECORD}; it is judged by the paths in its config instead."
    return f"{found.sentence} (matched by pixel content)."


class PatchLookup:
    """Read patches by id from one or more datasets (e.g. the data a run was trained on).

    Datasets that cannot be opened are skipped and named in `problems`, so a run whose data
    moved still shows its tables, just without images.
    """

    def __init__(self, paths: list[str] | tuple[str, ...]) -> None:
        from core.data.dataset import open_dataset

        self.datasets = []
        self.problems: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for path in paths:
            try:
                dataset = open_dataset(path)
            except (PatchLensError, OSError) as error:
                self.problems.append(f"{path}: {error}")
                continue
            number = len(self.datasets)
            self.datasets.append(dataset)
            for index, item in enumerate(dataset.ids):
                self._where.setdefault(item, (number, index))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item: str) -> bool:
        return item in self._where

    def source_of(self, item: str) -> str:
        """Where the patch lives (a file, or an HDF5 file and row); '' when unknown."""
        if item not in self._where:
            return ""
        number, index = self._where[item]
        return self.datasets[number].source_of(index)

    def read(self, ids: list[str]) -> tuple[np.ndarray, list[str], dict[str, str]]:
        """(patches, the ids they belong to, {id: why it could not be read})."""
        patches: list[np.ndarray] = []
        found: list[str] = []
        missing: dict[str, str] = {}
        for item in ids:
            if item not in self._where:
                missing[item] = "not found in the datasets this source points to"
                continue
            number, index = self._where[item]
            try:
                patches.append(self.datasets[number].read_patch(index))
            except (PatchError, OSError) as error:
                missing[item] = str(error)
                continue
            found.append(item)
        stack = np.stack(patches) if patches else np.empty((0, 96, 96, 3), dtype=np.uint8)
        return stack, found, missing


def dataset_lookup(dataset) -> PatchLookup:
    """A PatchLookup over one dataset that is already open (no second open)."""
    lookup = PatchLookup([])
    lookup.datasets.append(dataset)
    for index, item in enumerate(dataset.ids):
        lookup._where.setdefault(item, (0, index))
    return lookup
