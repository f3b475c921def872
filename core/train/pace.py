"""The measured pace of a training job and the time it still needs (its ETA).

Seconds per step are the median of the most recent steps; the first step of every epoch is left out,
since it carries the warm-up (tracing the model in epoch 1, refilling the data pipeline after each
validation) and would make the estimate minutes too long. Each epoch's validation (precise BatchNorm,
the validation pass, the checkpoint) is timed too (the first, which traces the evaluation, is left
out once a second is timed); until the first one is measured it is estimated
from the pace as a forward pass over its batches (precise BatchNorm's and the validation set's).
"""

from __future__ import annotations

import statistics
from collections import deque

RECENT_STEPS = 20  # steps the pace is the median of
FORWARD_SHARE = 1 / 3  # a forward pass costs about a third of a training step (forward + backward)


class Pace:
    """Times steps and validations as they end; `eta_s(epoch, step)` is the time still needed."""

    def __init__(self, *, epochs: int, steps_per_epoch: int, validation_batches: int):
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.validation_batches = validation_batches
        self.step_seconds: deque[float] = deque(maxlen=RECENT_STEPS)
        self.validation_seconds: list[float] = []
        self.last_step_end: float | None = None

    def step_ended(self, step: int, now: float) -> None:
        """Step `step` (1-based within its epoch) ended at `now`."""
        if step > 1 and self.last_step_end is not None:
            self.step_seconds.append(now - self.last_step_end)
        self.last_step_end = now

    def validation_ended(self, seconds: float) -> None:
        """An epoch's validation took `seconds`; the next epoch's first step starts the clock again."""
        self.validation_seconds.append(seconds)
        self.last_step_end = None

    @property
    def seconds_per_step(self) -> float | None:
        return statistics.median(self.step_seconds) if self.step_seconds else None

    @property
    def seconds_per_validation(self) -> float | None:
        if self.validation_seconds:  # the first one traces the evaluation: left out once others exist
            measured = self.validation_seconds
            return statistics.median(measured[1:][-3:] or measured)
        pace = self.seconds_per_step
        return None if pace is None else self.validation_batches * pace * FORWARD_SHARE

    def eta_s(self, epoch: int, step: int) -> float | None:
        """Seconds still needed after step `step` of epoch `epoch` (1-based, the run's numbering):
        the remaining steps at the measured pace plus a validation for this and every later epoch.
        None until a step after the warm-up has been timed."""
        pace, validation = self.seconds_per_step, self.seconds_per_validation
        if pace is None:
            return None
        steps_left = (self.epochs - epoch) * self.steps_per_epoch + self.steps_per_epoch - step
        return steps_left * pace + (self.epochs - epoch + 1) * validation


def eta_words(eta_s: float | None) -> str:
    """The ETA as the progress line shows it."""
    return "ETA after a few steps" if eta_s is None else f"ETA {eta_s / 60:.1f} min"
