"""The one scoring loop: batches of pixels in, per-batch results out (TIAToolbox's batches → infer →
post-process), used by prediction (core.evaluate.predict), features (core.diagnose.features) and region
heatmaps (core.region.heatmap), which only say where their pixels come from and what to keep.

    read ahead (bounded)  →  quality gate (when asked)  →  stain normaliser (the model's)
        →  forward pass: probabilities (+ penultimate features, + out-of-distribution distance)
        →  a ScoredBatch handed to the consumer  →  progress(done, total), should_stop()

A source is any iterable of `Batch`es (dataset patches, a slide's tile bands). A reader thread takes
them and runs the input-quality gate on the raw pixels (core.data.stream.read_ahead: at most
PREFETCH_BATCHES batches wait, so memory stays bounded whatever the dataset or slide; an error of the
source is raised in the consumer). The model runs in the calling thread, one traced forward pass per
batch, the one core.evaluate.predict.forward_pass builds: compiled_predict for probabilities alone,
core.model.features.compiled_scores when the features or the out-of-distribution distance
(core.model.ood) are asked for.

Progress has one signature, `progress(done, total)` in patches (read or not), called before the first
batch and after the consumer is done with each; `should_stop()` is asked at the same points and ends the
run with ScoringStopped. TensorFlow is imported inside the forward-pass builders, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.normalise import normaliser_of
from core.data.quality import OUT_OF_DISTRIBUTION, QualityReport, assess, with_flag
from core.data.stream import dataset_chunks, read_ahead
from core.errors import ScoringStopped

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]
# A forward pass: float32 pixels -> (probabilities, features, OOD distances, OOD verdicts, spread of the
# 8 views), None for what was not asked for (core.evaluate.predict.forward_pass builds them).
Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]
Forward = Callable[[np.ndarray], Outputs]


@dataclass(frozen=True)
class Batch:
    """What a source hands the loop: uint8 pixels (n, 96, 96, 3), n may be 0; `where` they belong (the
    consumer's business: dataset indices, tile rows and columns); `span`, the patches this batch
    stands for in the progress count (read or not; n by default)."""

    where: Any
    pixels: np.ndarray
    span: int | None = None

    @property
    def counted(self) -> int:
        return len(self.pixels) if self.span is None else self.span


@dataclass(frozen=True)
class ScoredBatch:
    """What the loop hands the consumer for one batch.

    pixels : the raw uint8 pixels as read (before stain normalisation).
    probs : (n,) float32 P(tumour) (the mean of the 8 dihedral views with TTA).
    features : (n, d) float32 penultimate features, when asked for.
    distances : (n,) out-of-distribution distances, when asked for and the model has statistics.
    out_of_distribution : (n,) bool, distance above the model's threshold (same condition).
    spread : (n,) the standard deviation of the 8 views' probabilities, with TTA (core.evaluate.uncertainty).
    report : the input-quality gate's report on the raw pixels, when asked for.
    """

    where: Any
    pixels: np.ndarray
    probs: np.ndarray
    features: np.ndarray | None = None
    distances: np.ndarray | None = None
    out_of_distribution: np.ndarray | None = None
    spread: np.ndarray | None = None
    report: QualityReport | None = None

    @property
    def quality_labels(self) -> list[str] | None:
        """'ok' or the flags joined by ';' per patch (the model's out_of_distribution last); None
        without the quality gate."""
        if self.report is None:
            return None
        labels = self.report.labels
        if self.out_of_distribution is None:
            return labels
        return with_flag(labels, OUT_OF_DISTRIBUTION, self.out_of_distribution)


def dataset_batches(
    dataset, batch_size: int, *, skipped: dict[str, str], first: int | None = None
) -> Iterator[Batch]:
    """The source for a whole Dataset: its readable patches in runs of `batch_size`, `where` = their
    positions (int64). A patch that cannot be read is left out and named in `skipped` ({id: why}) as
    the reader meets it, so one corrupt file never sinks a 220,000-patch run. With `first`, the first
    run holds only that many patches, so a job reports its first progress after a fraction of a
    batch (each patch's outputs do not depend on the batch it is scored in)."""
    for pixels, good, bad in dataset_chunks(dataset, batch_size, first=first):
        skipped.update({dataset.ids[i]: reason for i, reason in bad.items()})
        yield Batch(np.asarray(good, dtype=np.int64), pixels, span=len(good) + len(bad))


def _assessed(batches: Iterable[Batch], quality: bool) -> Iterator[tuple[Batch, QualityReport | None]]:
    """Each batch with the quality gate's report on its pixels (run here, in the reader thread)."""
    for batch in batches:
        yield batch, (assess(batch.pixels) if quality and len(batch.pixels) else None)


def _stop_if_asked(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise ScoringStopped("stopped on request")


def score_batches(
    model,
    batches: Iterable[Batch],
    *,
    forward: Forward,
    total: int,
    quality: bool = False,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    name: str = "scoring-reader",
) -> Iterator[ScoredBatch]:
    """Score every batch of `batches` (read ahead by a thread named `name`) and yield a ScoredBatch for
    each batch that holds pixels. Close the generator when done early (`contextlib.closing`).

    Parameters
    ----------
    model : a Keras model following the PatchLens contract; its stain normaliser is applied.
    forward : the model's forward pass, core.evaluate.predict.forward_pass(model, ...): what it asks for
        (TTA, features, the out-of-distribution distance) is what the ScoredBatches carry.
    total : the patches the source holds, for `progress`.
    quality : also run the input-quality gate on the raw pixels.
    progress : progress(done, total), before the first batch and after the consumer is done with each.
    should_stop : asked at the same points; True ends the run with ScoringStopped.
    """
    normaliser = normaliser_of(model)
    done = 0
    if progress:
        progress(done, total)
    _stop_if_asked(should_stop)
    with closing(read_ahead(_assessed(batches, quality), name=name, join_timeout=10)) as ready:
        for batch, report in ready:
            if len(batch.pixels):
                pixels = normaliser.transform(batch.pixels).astype(np.float32)  # as the model was trained
                yield ScoredBatch(batch.where, batch.pixels, *forward(pixels), report=report)
            done += batch.counted
            if progress:
                progress(done, total)
            _stop_if_asked(should_stop)
