"""The `label-issues` command: every labelled patch of a dataset, most likely mislabelled first.

  python -m core label-issues MODEL DATA --out suspects.csv
                     [--source predictions|run-validation|folds] [--folds K] [--epochs N] [--arch A]

writes `id,given_label,probability,score` (probability = P(tumour), score = the probability that
the given label is wrong, core.diagnose.label_issues), one row a ranked patch, most suspect first.
Where the probabilities come from (stderr says which kind, in- or out-of-sample):
  predictions     (default) MODEL's predictions on DATA (cached in the workspace). Out-of-sample
                  only when MODEL never trained on DATA; the command warns when its stored config
                  says it did, or cannot tell.
  run-validation  MODEL is a run directory: its val_predictions.csv, out-of-sample but only for
                  the run's validation patches (the rest of DATA is not ranked).
  folds           K-fold cross-validation (--folds K, default 5): K small models of MODEL's
                  architecture, trained for --epochs on K-1 folds each; out-of-sample for every
                  patch, slow. Ctrl-C stops; finished folds are reused by the next call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import add_command, add_model_data_arguments, output_file, positive_int
from core.errors import RunError

SOURCES = ("predictions", "run-validation", "folds")
TOP_SHOWN = 5


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "label-issues",
        run_label_issues,
        help="rank the labelled patches of a dataset by how likely their label is wrong",
        description="Write id,given_label,probability,score for every ranked patch of DATA, most "
        "suspect first (confident learning with cleanlab on out-of-sample probabilities).",
    )
    add_model_data_arguments(parser, labelled=True)
    parser.add_argument(
        "--out", required=True, type=output_file, help="CSV to write (id,given_label,probability,score)"
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        help="where the probabilities come from (default: predictions; folds when --folds is given)",
    )
    parser.add_argument("--folds", type=_at_least_two, help="K of the k-fold cross-validation (default 5)")
    parser.add_argument("--epochs", type=positive_int, help="epochs of each fold model (default 2)")
    parser.add_argument("--arch", help="architecture of the fold models (default: MODEL's)")
    parser.add_argument("--tta", action="store_true", help="predictions source: average 8 flips/rotations")


def _at_least_two(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 folds, got {value}")
    return value


def run_label_issues(args: argparse.Namespace) -> int:
    from core.data.dataset import open_dataset
    from core.diagnose.label_issues import rank_dataset, require_labels, write_suspects

    source = args.source or ("folds" if args.folds else "predictions")
    if source != "folds" and (args.folds or args.epochs or args.arch):
        raise RunError("--folds, --epochs and --arch belong to --source folds.")
    dataset = open_dataset(args.data)
    require_labels(dataset)
    predictions, kind = _probabilities(source, args, dataset)
    ranked = rank_dataset(dataset, predictions)
    write_suspects(ranked, args.out)
    _report(ranked, kind, args.out)
    return 0


def _probabilities(source: str, args: argparse.Namespace, dataset):
    """(predictions id,label,prob, ProbabilityKind) from the chosen source."""
    from core.diagnose import label_issues

    if source == "run-validation":
        from core.evaluate.sources import load_run_predictions

        run_dir = Path(args.model)
        if not run_dir.is_dir():
            raise RunError(f"--source run-validation needs a run directory as MODEL; {run_dir} is not one.")
        predictions = load_run_predictions(run_dir)
        return predictions, label_issues.run_validation_kind(len(predictions), len(dataset))
    if source == "folds":
        return _folds(args, dataset)
    from core.evaluate.predictions import cached_predictions
    from core.evaluate.sources import training_overlap
    from core.formatting import ProgressLine
    from core.model.io import read_model_meta, resolve_model_path

    meta = read_model_meta(resolve_model_path(args.model))
    overlap = training_overlap(args.model, dataset)
    kind = label_issues.model_predictions_kind(meta.get("config"), args.data, overlap)
    if not kind.trustworthy:
        print(f"warning: {kind.kind} probabilities. {kind.sentence}", file=sys.stderr)
    predictions = cached_predictions(args.model, dataset, tta=args.tta, progress=ProgressLine("Predicting"))
    return predictions, kind


def _folds(args: argparse.Namespace, dataset):
    from core.diagnose.crossval import DEFAULT_FOLDS, CrossValSettings, crossval_dir, crossval_probabilities
    from core.diagnose.label_issues import folds_kind
    from core.model.io import read_model_meta, resolve_model_path

    architecture = (
        args.arch or read_model_meta(resolve_model_path(args.model)).get("architecture") or "patchnet"
    )
    settings = CrossValSettings(
        folds=args.folds or DEFAULT_FOLDS,
        architecture=architecture,
        **({"epochs": args.epochs} if args.epochs else {}),
    ).validate()
    print(
        f"{settings.folds}-fold cross-validation: {settings.folds} {architecture} models, {settings.epochs} "
        f"epoch(s) each; folds kept in {crossval_dir(dataset, settings)} (Ctrl-C stops).",
        file=sys.stderr,
    )

    def progress(fold: int, folds: int, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    predictions = crossval_probabilities(dataset, settings, progress=progress, verbose=True)
    return predictions, folds_kind(settings.folds)


def _report(ranked, kind, out: Path) -> None:
    """The kind of probabilities, the counts and the first suspects (stderr)."""
    print(f"probabilities: {kind.kind}. {kind.sentence}", file=sys.stderr)
    not_ranked = ranked.attrs.get("not_ranked", 0)
    left_out = (
        f"; {not_ranked:,} labelled patches have no probability and are not ranked" if not_ranked else ""
    )
    print(
        f"{len(ranked):,} patches ranked, {int(ranked['flagged'].sum()):,} flagged as likely label errors "
        f"by confident learning{left_out}; wrote {out}",
        file=sys.stderr,
    )
    for row in ranked.head(TOP_SHOWN).itertuples():
        print(
            f"  {row.id}  given {row.given_label}  P(tumour) {row.probability:.3f}  score {row.score:.3f}",
            file=sys.stderr,
        )
