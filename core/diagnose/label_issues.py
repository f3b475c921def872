"""Likely label errors: rank every labelled patch by how likely its given label is wrong.

Public patch labels carry noise. Confident learning (Northcutt, Jiang & Chuang, JAIR 2021), through
its reference implementation cleanlab, finds them from two things only: the given labels and a
model's probabilities for the same patches. Here, per patch:

  score       = 1 - cleanlab's label quality (`cleanlab.rank.get_label_quality_scores`,
                method "self_confidence") = 1 - P(given label): the probability, by the model, that
                the given label is wrong. For two classes "normalized_margin" gives the same number.
  flagged     = in `cleanlab.filter.find_label_issues` (prune by noise rate): one of the patches
                confident learning counts among the estimated label errors, using per-class
                thresholds (the mean self-confidence of each class), so it adapts to a model that is
                shy of one class. The list is still ordered by `score`, most suspect first.

The probabilities must be OUT-OF-SAMPLE for the ranking to mean anything: a model scores its own
training patches with their given labels, right or wrong. `ProbabilityKind` says which kind a
source delivers, and every page and command says it out loud:
  a run's validation predictions   out-of-sample, for the run's validation patches only
  k-fold cross-validation          out-of-sample for every patch (core.diagnose.crossval)
  a model's plain predictions      out-of-sample only if the model never trained on these patches:
                                   counted by pixel content against the hashes of its training
                                   patches (core.data.hashes); a model from before those were kept
                                   falls back to the training paths in its stored config

Bad input raises DatasetError: an unlabelled dataset, a single class, probabilities outside [0, 1],
predictions whose ids are not the dataset's or whose labels disagree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.hashes import Overlap
from core.errors import DatasetError
from core.evaluate.sources import training_overlap_note
from core.files import atomic_write_csv

SUSPECT_COLUMNS = ("id", "given_label", "probability", "score")  # the CSV, exactly
QUALITY_METHOD = "self_confidence"  # cleanlab's label-quality score; = normalized_margin for 2 classes

OUT_OF_SAMPLE = "out-of-sample"
IN_SAMPLE = "in-sample"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbabilityKind:
    """Whether the probabilities were made by a model that never saw these patches, and why we think so."""

    kind: str  # OUT_OF_SAMPLE, IN_SAMPLE or UNKNOWN
    sentence: str  # one sentence for the page and the command line

    @property
    def trustworthy(self) -> bool:
        return self.kind == OUT_OF_SAMPLE


# --------------------------------------------------------------------------- the ranking


def rank_label_issues(ids, given_labels, probabilities) -> pd.DataFrame:
    """Rank patches by how likely their given label is wrong, most suspect first.

    Parameters
    ----------
    ids : the patch ids (unique).
    given_labels : their labels, 0 (normal) or 1 (tumour); both classes must occur.
    probabilities : P(tumour) of each patch, in [0, 1], ideally out-of-sample.

    Returns
    -------
    DataFrame with columns id, given_label (int), probability (P(tumour)), score (= 1 - cleanlab's
    label quality: the probability that the given label is wrong) and flagged (bool, cleanlab's
    find_label_issues), sorted by score (highest first), ties by id.
    """
    ids, labels, probs = _check(ids, given_labels, probabilities)
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    pred_probs = np.column_stack([1.0 - probs, probs])
    score = 1.0 - get_label_quality_scores(labels, pred_probs, method=QUALITY_METHOD)
    flagged = find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate", n_jobs=1)
    order = np.lexsort((ids, -score))  # highest score first, ties by id (8x faster than pandas' sort)
    return pd.DataFrame(
        {
            "id": ids[order].tolist(),
            "given_label": labels[order],
            "probability": probs[order],
            "score": score[order],
            "flagged": flagged[order],
        }
    )


def _check(ids, given_labels, probabilities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate once: unique ids, 0/1 labels of both classes, finite probabilities in [0, 1]."""
    ids = np.asarray(ids, dtype=str)
    labels = np.asarray(given_labels, dtype=float)
    probs = np.asarray(probabilities, dtype=float)
    if not (ids.ndim == labels.ndim == probs.ndim == 1) or not (len(ids) == len(labels) == len(probs)):
        raise DatasetError(
            f"ids, labels and probabilities must be three lists of one length; got {len(ids)}, "
            f"{len(labels)} and {len(probs)}."
        )
    if len(ids) == 0 or np.isnan(labels).all():
        raise DatasetError("No labelled patches: label errors can only be looked for in a labelled dataset.")
    if np.isnan(labels).any():
        raise DatasetError(f"{int(np.isnan(labels).sum())} patches have no label; rank labelled ones only.")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DatasetError(f"Labels must be 0 or 1; found {np.unique(labels[~np.isin(labels, (0, 1))])[:5]}.")
    if len(np.unique(labels)) < 2:
        only = int(labels[0])
        raise DatasetError(
            f"Every patch is labelled {only}: confident learning needs both classes to estimate how "
            "often one is mistaken for the other."
        )
    if not np.isfinite(probs).all() or probs.min() < 0.0 or probs.max() > 1.0:
        raise DatasetError("Probabilities must be finite numbers in [0, 1].")
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        raise DatasetError(f"Patch ids must be unique; {ids[duplicated][0]!r} appears more than once.")
    return ids, labels.astype(np.int64), probs


def rank_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """`rank_label_issues` of a predictions frame (id, label, prob); unlabelled rows are left out."""
    missing = [c for c in ("id", "label", "prob") if c not in predictions.columns]
    if missing:
        raise DatasetError(f"The predictions lack the column(s) {missing}.")
    known = predictions[predictions["label"].notna()]
    return rank_label_issues(known["id"].to_numpy(), known["label"].to_numpy(), known["prob"].to_numpy())


def rank_dataset(dataset, predictions: pd.DataFrame) -> pd.DataFrame:
    """Rank the labelled patches of `dataset` that `predictions` (id, prob[, label]) cover.

    The given labels are the dataset's. Predictions for ids the dataset does not hold, or whose
    label disagrees with the dataset's, mean they were made on other data: DatasetError. Patches of
    the dataset without a prediction (unreadable, or outside a run's validation split) are not
    ranked; `frame.attrs["not_ranked"]` counts them.
    """
    require_labels(dataset)
    given = pd.Series(np.asarray(dataset.labels, dtype=float), index=pd.Index(dataset.ids, dtype=str))
    rows = predictions.assign(id=predictions["id"].astype(str))
    foreign = ~rows["id"].isin(given.index)
    if foreign.any():
        raise DatasetError(
            f"{int(foreign.sum())} of {len(rows)} predictions are for patches that "
            f"{Path(dataset.path).name} does not hold (e.g. {rows['id'][foreign].iloc[0]!r}): they "
            "were made on another dataset."
        )
    labels = given.loc[rows["id"]].to_numpy()
    if "label" in rows.columns:
        stated = rows["label"].to_numpy(dtype=float)
        disagree = ~np.isnan(stated) & (stated != labels)
        if disagree.any():
            raise DatasetError(
                f"{int(disagree.sum())} predictions carry a label other than the dataset's "
                f"(e.g. {rows['id'][disagree].iloc[0]!r}): they were made against other labels."
            )
    ranked = rank_label_issues(rows["id"].to_numpy(), labels, rows["prob"].to_numpy())
    ranked.attrs["not_ranked"] = len(given) - len(ranked)
    return ranked


def require_labels(dataset) -> None:
    """DatasetError unless `dataset` carries labels: without a given label there is nothing to doubt."""
    if dataset.labels is None:
        raise DatasetError(
            f"{Path(dataset.path).name} is unlabelled: there is no given label to doubt. "
            "Label errors can only be looked for in a labelled dataset."
        )


# --------------------------------------------------------------------------- output


def suspects_table(ranked: pd.DataFrame) -> pd.DataFrame:
    """The exported columns only: id, given_label, probability, score."""
    return ranked.loc[:, list(SUSPECT_COLUMNS)]


def suspects_csv(ranked: pd.DataFrame) -> bytes:
    """The page's download: id,given_label,probability,score, most suspect first."""
    return suspects_table(ranked).to_csv(index=False).encode()


def write_suspects(ranked: pd.DataFrame, path: str | Path) -> Path:
    """Write the suspects CSV atomically."""
    return atomic_write_csv(suspects_table(ranked), path)


# --------------------------------------------------------------------------- in- or out-of-sample


def model_predictions_kind(
    model_config: dict | None, dataset_path: str | Path, overlap: Overlap | None = None
) -> ProbabilityKind:
    """What a model's plain predictions on a dataset are worth for finding label errors: decided by
    `overlap` (how many of the patches the model trained on, by pixel content; core.data.hashes), or,
    for a model without a training record (None), by the training paths in its stored config."""
    if overlap is not None:
        return _kind_by_content(overlap, model_config, dataset_path)
    by_path = training_overlap_note(model_config, dataset_path)
    if by_path:
        return ProbabilityKind(IN_SAMPLE, f"{NO_RECORD_RULE} {MEMORISED} {by_path}")
    if not model_config or not model_config.get("data"):
        return ProbabilityKind(
            UNKNOWN,
            "The model file records neither its training patches nor its training data, so nothing "
            "says whether it saw these patches. If it did, the wrong labels it memorised are not found.",
        )
    sentence = f"{NO_RECORD_RULE} by its stored config, this model was not trained on this dataset."
    return ProbabilityKind(OUT_OF_SAMPLE, sentence + _validation_note(model_config, dataset_path))


NO_RECORD_RULE = (
    "This model keeps no record of its training patches, so this is judged by the paths in its config:"
)
MEMORISED = (
    "A model learns the given labels of its training patches, wrong ones included: it scores a "
    "mislabelled patch it trained on as if the label were right, so that patch is never found. Rank a "
    "run's validation predictions or k-fold cross-validation instead."
)


def _kind_by_content(
    overlap: Overlap, model_config: dict | None, dataset_path: str | Path
) -> ProbabilityKind:
    if overlap.in_training:
        return ProbabilityKind(IN_SAMPLE, f"{overlap.sentence} (matched by pixel content). {MEMORISED}")
    sentence = f"{overlap.sentence} (matched by pixel content): it never saw them, so a wrong label shows."
    return ProbabilityKind(OUT_OF_SAMPLE, sentence + _validation_note(model_config, dataset_path))


def _validation_note(model_config: dict | None, dataset_path: str | Path) -> str:
    val_data = (model_config or {}).get("val_data")
    if val_data and Path(val_data).resolve() == Path(dataset_path).resolve():
        return " It was its validation set, on which the best epoch was chosen (a mild optimism)."
    return ""


def run_validation_kind(n_patches: int, n_labelled: int | None = None) -> ProbabilityKind:
    """A run's stored validation predictions: out-of-sample, but only for its validation patches."""
    share = f" ({n_patches:,} of {n_labelled:,} labelled patches)" if n_labelled else f" ({n_patches:,})"
    return ProbabilityKind(
        OUT_OF_SAMPLE,
        "From the run's validation patches only" + share + ": the run never trained on them. The "
        "other patches are not ranked.",
    )


def folds_kind(folds: int) -> ProbabilityKind:
    """K-fold cross-validated probabilities: every patch scored by a model that never saw it."""
    return ProbabilityKind(
        OUT_OF_SAMPLE,
        f"{folds}-fold cross-validation: every patch scored by a model trained on the other "
        f"{folds - 1} fold(s), never on the patch itself.",
    )
