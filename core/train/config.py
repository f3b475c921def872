"""The configuration of a training run: everything that defines it, saved as config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.data.normalise import METHODS as STAIN_NORMALISATIONS
from core.errors import RunError, TrainConfigError
from core.model.architectures import DEFAULT_ARCHITECTURE, NO_WEIGHTS
from core.model.augment import AugmentConfig

SCHEDULES = ("cosine", "constant")
STRATEGIES = ("default", "mirrored", "multiworker")
DEFAULT_BATCH_SIZE = 64  # per replica, sized for a CPU
GPU_BATCH_SIZE = 256  # per GPU, used when a GPU is present and the batch size was left at the default


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run directory."""

    data: list[str]
    val_data: str | None = None  # a second dataset; when None, a fraction of `data` is held out
    val_fraction: float = 0.2
    architecture: str = DEFAULT_ARCHITECTURE
    weights: str = NO_WEIGHTS  # backbones only: none | imagenet | the path of a local weights file
    epochs: int = 10
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    early_stopping_patience: int = 0  # epochs without a better val AUC before stopping; 0 = off
    class_weighting: bool = False
    seed: int = 0
    max_minutes: float | None = None  # wall-clock budget; stops gracefully when reached
    limit: int | None = None  # use at most this many training patches (quick trials)
    workers: int = 2  # processes for the one-time conversion into the HDF5 cache
    strategy: str = "default"  # default | mirrored (several GPUs) | multiworker (TF_CONFIG)
    memory_limit_gb: float = 1.0  # selections larger than this stream from the HDF5 cache
    resume_from: str | None = None  # a checkpoint (.keras) or run directory to continue from
    stain_normalisation: str = (
        "none"  # none | macenko | reinhard (core.data.normalise), fitted on training data
    )
    calibrate: bool = True  # temperature scaling fitted on the validation set, folded into the final model
    stain_reference: str | None = (
        None  # a patch image to fit it on instead of one picked from the training data
    )
    swa_epochs: int = 0  # average the weights of the last N epochs (core.train.averaging); 0 = off
    swa_lr: float | None = None  # the learning rate of those epochs; None = a fifth of learning_rate

    def validate(self) -> TrainConfig:
        """This configuration, checked (TrainConfigError, an InputError, names the first bad value);
        `data` becomes a list of strings and `augment` an AugmentConfig."""
        from core.model.architectures import ARCHITECTURES, weights_problem

        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]
        if not self.data:
            raise TrainConfigError("Choose at least one training dataset.")
        for path in [*self.data, *([self.val_data] if self.val_data else [])]:
            if not Path(path).exists():
                raise TrainConfigError(f"No dataset at {path}.")
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if self.architecture not in ARCHITECTURES:
            raise TrainConfigError(f"Unknown architecture {self.architecture!r}: {', '.join(ARCHITECTURES)}.")
        problem = weights_problem(self.architecture, self.weights)
        if problem:
            raise TrainConfigError(problem)
        if not self.val_data and not 0.0 < self.val_fraction < 1.0:
            raise TrainConfigError("The validation fraction must lie between 0 and 1.")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise TrainConfigError("Epochs, batch size and learning rate must be positive.")
        if self.swa_epochs and not 2 <= self.swa_epochs < self.epochs:  # negatives included
            raise TrainConfigError(
                "Weight averaging needs at least 2 epochs, and fewer than the run's epochs."
            )
        if self.swa_lr is not None and self.swa_lr <= 0:
            raise TrainConfigError("The learning rate of weight averaging must be positive.")
        if self.schedule not in SCHEDULES:
            raise TrainConfigError(f"Unknown schedule {self.schedule!r}: {', '.join(SCHEDULES)}.")
        if self.stain_normalisation not in STAIN_NORMALISATIONS:
            raise TrainConfigError(
                f"Unknown stain normalisation {self.stain_normalisation!r}: "
                f"{', '.join(STAIN_NORMALISATIONS)}."
            )
        if self.stain_reference and not Path(self.stain_reference).is_file():
            raise TrainConfigError(f"No stain reference image at {self.stain_reference}.")
        if self.strategy not in STRATEGIES:
            raise TrainConfigError(f"Unknown strategy {self.strategy!r}.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The configuration in `data` (a config.json), refused in words when a value has the wrong type."""
        from core.train.records import describe, type_problems

        if not isinstance(data, dict):
            raise RunError(f"The configuration is damaged: it holds {describe(data)}, not a record.")
        problems = type_problems(cls, data, "config.json")
        if problems:
            raise RunError("The configuration is damaged: " + "; ".join(problems) + ".")
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        return config.validate()
