"""`python -m core train`: the same code path as the Train page, with a progress line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import add_command
from core.errors import RunError, TrainConfigError
from core.model.architectures import ARCHITECTURES, IMAGENET, NO_WEIGHTS, WEIGHTS_HELP
from core.model.augment import AugmentConfig
from core.train.config import SCHEDULES, STAIN_NORMALISATIONS, STRATEGIES, TrainConfig

DEFAULTS = TrainConfig(data=[])  # every option's default is TrainConfig's (never validated: no data)


def register(subparsers) -> None:
    """The `train` command: its datasets and run directory here, its options by group below."""
    parser = add_command(
        subparsers,
        "train",
        run,
        help="train a model on one or more datasets",
        description="Train a model; writes config.json, status.json, metrics.jsonl, best.keras, "
        "model.keras and val_predictions.csv into the run directory.",
    )
    parser.add_argument("data", nargs="*", help="training dataset(s): any supported layout")
    parser.add_argument("--out", help="run directory (default: a new one under the workspace)")
    parser.add_argument("--config", help="read the whole configuration from this config.json")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an earlier (failed or stopped) run from its best checkpoint, with its configuration; "
        "--epochs, if given, sets the new total",
    )
    parser.add_argument(
        "--val-data", help="a separate validation dataset (its ids are excluded from training)"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULTS.val_fraction,
        help="held-out fraction when no --val-data",
    )
    _model_options(parser)
    _optimisation_options(parser)
    _running_options(parser)


def _model_options(parser) -> None:
    """Which model: the architecture and its starting weights."""
    parser.add_argument(
        "--arch", default=DEFAULTS.architecture, choices=list(ARCHITECTURES), help="architecture"
    )
    parser.add_argument(
        "--weights",
        default=DEFAULTS.weights,
        help=f"starting weights of a Keras Applications backbone: {WEIGHTS_HELP}",
    )


def _optimisation_options(parser) -> None:
    """How the model learns: epochs, batch, learning rate, augmentation, stain, averaging, calibration."""
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"passes over the training data (default {DEFAULTS.epochs}; with --resume: the new total, "
        "default the earlier run's)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="per replica")
    parser.add_argument("--lr", type=float, default=DEFAULTS.learning_rate, help="initial learning rate")
    parser.add_argument("--schedule", default=DEFAULTS.schedule, choices=SCHEDULES)
    parser.add_argument("--no-dihedral", action="store_true", help="no flips / 90° rotations")
    parser.add_argument(
        "--color-jitter",
        type=float,
        default=1.0,
        help="strength of brightness/contrast/saturation/hue jitter (0 = off, 1 = default)",
    )
    parser.add_argument(
        "--hed-jitter", type=float, default=DEFAULTS.augment.hed, help="HED stain jitter strength (e.g. 0.05)"
    )
    parser.add_argument(
        "--stain-norm",
        default=DEFAULTS.stain_normalisation,
        choices=STAIN_NORMALISATIONS,
        help="stain normalisation fitted on the training data, stored in the model and applied wherever "
        "it scores a patch (default none)",
    )
    parser.add_argument(
        "--stain-reference", metavar="IMAGE", help="fit the stain normalisation on this patch instead"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=DEFAULTS.early_stopping_patience,
        help="early stopping patience on val AUC (0 = off)",
    )
    parser.add_argument(
        "--swa-epochs",
        type=int,
        default=None,
        help="average the weights of the last N epochs (stochastic weight averaging; the run keeps the "
        "average if it validates at least as well as the best epoch; also with --resume; default 0 = off)",
    )
    parser.add_argument(
        "--swa-lr", type=float, help="learning rate of the averaged epochs (default a fifth of --lr)"
    )
    parser.add_argument("--class-weights", action="store_true", help="weight classes inversely to frequency")
    parser.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="keep the raw probabilities (default: temperature scaling fitted on the validation set)",
    )


def _running_options(parser) -> None:
    """How the run runs: seed, budget, size, workers, strategy, memory, output."""
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget; stops gracefully when reached")
    parser.add_argument("--limit", type=int, help="use at most this many training patches")
    parser.add_argument(
        "--workers", type=int, default=DEFAULTS.workers, help="processes for the one-time cache conversion"
    )
    parser.add_argument("--strategy", default=DEFAULTS.strategy, choices=STRATEGIES)
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=DEFAULTS.memory_limit_gb,
        help="training data up to this size is held in memory; larger sets stream from the HDF5 cache",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.resume:
        from core.train.job import resume_config

        return resume_config(args.resume, epochs=args.epochs, swa_epochs=args.swa_epochs, swa_lr=args.swa_lr)
    if args.config:
        try:
            return TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise RunError(f"Cannot read the configuration {args.config}: {error}") from error
    if not args.data:
        raise TrainConfigError("Name at least one training dataset (or --config).")
    augment = AugmentConfig.with_strength(
        args.color_jitter, dihedral=not args.no_dihedral, hed=args.hed_jitter
    )
    return TrainConfig(
        data=[str(Path(d).resolve()) for d in args.data],
        val_data=str(Path(args.val_data).resolve()) if args.val_data else None,
        val_fraction=args.val_fraction,
        architecture=args.arch,
        weights=_weights_argument(args.weights),
        epochs=args.epochs if args.epochs is not None else DEFAULTS.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        schedule=args.schedule,
        augment=augment,
        early_stopping_patience=args.patience,
        class_weighting=args.class_weights,
        calibrate=args.calibrate,
        swa_epochs=args.swa_epochs or DEFAULTS.swa_epochs,
        swa_lr=args.swa_lr,
        seed=args.seed,
        max_minutes=args.max_minutes,
        limit=args.limit,
        workers=args.workers,
        strategy=args.strategy,
        memory_limit_gb=args.memory_limit_gb,
        stain_normalisation=args.stain_norm,
        stain_reference=str(Path(args.stain_reference).resolve()) if args.stain_reference else None,
    ).validate()


def _weights_argument(weights: str) -> str:
    """none and imagenet as given; a weights file as an absolute path (the run may start elsewhere)."""
    return weights if weights in (NO_WEIGHTS, IMAGENET) else str(Path(weights).expanduser().resolve())


def run(args: argparse.Namespace) -> int:
    from core.train.job import run_training
    from core.train.runs import active_run, job_conflict, new_run_dir
    from core.train.views import outcome_words

    config = config_from_args(args)
    running = active_run()  # refused before a run folder is made, so none is left behind
    if running is not None and not (args.out and running.resolve() == Path(args.out).resolve()):
        raise job_conflict(running.name)  # (a job the Train page queued holds the lock for its --out)
    run_dir = Path(args.out) if args.out else new_run_dir(config.architecture)
    status = run_training(config, run_dir, verbose=not args.quiet)
    if status.get("state") == "failed":
        raise RunError(f"training failed: {status.get('error')} (see {run_dir / 'train.log'})")
    if not args.quiet:
        print(outcome_words(status), file=sys.stderr)
    if status.get("warning"):
        print(f"warning: {status['warning']}", file=sys.stderr)
    return 0
