"""Patches a user uploads on the Predict page: decoded in memory, judged by the input-quality gate
(the image checks at decoding, the model's out-of-distribution check once it has scored them), and
the table and counts the page shows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.constants import LABEL_NAMES
from core.data.images import decode_patch
from core.data.quality import FLAG_SEPARATOR, OK, OUT_OF_DISTRIBUTION, quality_labels, with_flag, withholds
from core.errors import PatchError
from core.evaluate.interpret import call_of


@dataclass
class UploadBatch:
    """Uploaded files decoded in memory: the good patches, stacked, their input-quality labels
    (core.data.quality: 'ok' or the flags joined by ';'), and a reason per bad file."""

    names: list[str] = field(default_factory=list)
    patches: np.ndarray = field(default_factory=lambda: np.empty((0, 96, 96, 3), dtype=np.uint8))
    digests: list[str] = field(default_factory=list)
    quality: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason without the name)


def decode_uploads(files: list[tuple[str, bytes]]) -> UploadBatch:
    """Decode each (name, bytes) with core.data.images.decode_patch and judge the good ones with the
    input-quality gate; a bad file never stops the others."""
    batch = UploadBatch()
    good: list[np.ndarray] = []
    for name, data in files:
        try:
            patch = decode_patch(data, name=name)
        except PatchError as error:  # the name is kept beside the reason, not repeated inside it
            batch.errors.append((name, getattr(error, "reason", str(error))))
            continue
        good.append(patch)
        batch.names.append(name)
        batch.digests.append(hashlib.sha256(data).hexdigest()[:16])
    if good:
        batch.patches = np.stack(good)
        batch.quality = quality_labels(batch.patches)
    return batch


def with_model_verdict(batch: UploadBatch, out_of_distribution) -> UploadBatch:
    """The batch with the scoring model's `out_of_distribution` flag (a bool per patch, from
    core.model.ood.score_patches) added to its quality labels; unchanged for None (the model carries
    no statistics of its training data)."""
    if out_of_distribution is None:
        return batch
    return replace(batch, quality=with_flag(batch.quality, OUT_OF_DISTRIBUTION, out_of_distribution))


def quality_flags(label: str) -> list[str]:
    """The flags of a quality label ('ok' → none)."""
    return [] if label == OK else label.split(FLAG_SEPARATOR)


def upload_results(batch: UploadBatch, probs: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row per uploaded file: file, probability, call at `threshold`, quality, problem (bad files).

    A patch with an image flag (background, not_he, blurred) keeps its probability but gets no call:
    the model's answer on it is not meaningful, and its `quality` column says why. One the model finds
    unusual (out_of_distribution alone) keeps its call, and its `quality` column warns.
    """
    quality = batch.quality or [OK] * len(batch.names)
    rows = [
        {
            "file": name,
            "probability": float(p),
            "call": "" if withholds(label) else call_of(p, threshold),
            "quality": label,
            "problem": "",
        }
        for name, p, label in zip(batch.names, np.asarray(probs, dtype=float), quality, strict=True)
    ]
    rows += [
        {"file": name, "probability": np.nan, "call": "", "quality": "", "problem": reason}
        for name, reason in batch.errors
    ]
    return pd.DataFrame(rows, columns=["file", "probability", "call", "quality", "problem"])


def upload_counts(results: pd.DataFrame) -> dict[str, int]:
    """The Predict cards from an `upload_results` table: scored, called tumour / normal (every patch
    with a call), flagged (scored, call withheld by an image flag), not readable."""
    scored = results["problem"] == ""
    calls = results.loc[scored, "call"]
    return {
        "scored": int(scored.sum()),
        "tumour": int((calls == LABEL_NAMES[1]).sum()),
        "normal": int((calls == LABEL_NAMES[0]).sum()),
        "flagged": int((calls == "").sum()),
        "unreadable": int((~scored).sum()),
    }
