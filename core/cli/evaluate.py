"""The `predict` and `evaluate` commands.

  python -m core predict MODEL DATA --out preds.csv [--quality-report quality.csv] [--tta] [--batch-size N]
      writes the Kaggle submission format `id,label` (label = tumour probability); with
      --quality-report also `id,probability,quality` (quality = `ok` or the input-quality flags
      joined by `;`, core.data.quality) for the same ids; with --tta also `spread,certainty`
      (the spread of the 8 views and `certain`/`uncertain`, core.evaluate.uncertainty)
  python -m core evaluate MODEL DATA [--threshold T] [--tta] [--json]
      prints the metrics of a labelled dataset, with 95% bootstrap intervals for AUC and accuracy;
      --json adds `training_overlap`: the share (0-1) of the evaluated patches that were among the
      model's training patches by pixel content, null when the model keeps no training record

MODEL is a .keras file or a run directory. Progress goes to stderr as plain `\\r` text, so stdout
stays clean for `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import (
    add_batch_size_argument,
    add_command,
    add_model_data_arguments,
    add_threshold_argument,
    output_file,
)
from core.data.quality import count_flags
from core.errors import DatasetError
from core.formatting import ProgressLine

JSON_KEYS = (
    "n",
    "auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "average_precision",
    "log_loss",
    "brier",
    "ece",
    "threshold",
    "confusion",
)
BOOTSTRAP_SAMPLES = 1000


def register(subparsers) -> None:
    predict = add_command(
        subparsers,
        "predict",
        run_predict,
        help="predict every patch of a dataset; write a Kaggle submission CSV",
        description="Write id,label (label = tumour probability) for every patch of DATA.",
    )
    _add_common(predict)
    predict.add_argument("--out", required=True, type=output_file, help="CSV to write (id,label)")
    predict.add_argument(
        "--quality-report",
        type=output_file,
        metavar="CSV",
        help="also write id,probability,quality: 'ok' or the input-quality flags (background, not_he, "
        "blurred) joined by ';'",
    )

    evaluate = add_command(
        subparsers,
        "evaluate",
        run_evaluate,
        help="metrics of a model on a labelled dataset",
        description="Print AUC, accuracy, sensitivity, ... of MODEL on the labelled DATA.",
    )
    _add_common(evaluate)
    add_threshold_argument(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--no-cache",
        action="store_true",
        help="always run the model (default: reuse predictions cached in the workspace)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_model_data_arguments(parser, labelled=False)
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average over the 8 flips/rotations (8x slower)",
    )
    add_batch_size_argument(parser)


def _report_skipped(frame) -> None:
    skipped = frame.attrs.get("skipped") or {}
    if skipped:
        first = next(iter(skipped.items()))
        print(
            f"warning: {len(skipped)} patch(es) could not be read and were left out "
            f"(first: {first[0]}: {first[1]})",
            file=sys.stderr,
        )


def run_predict(args: argparse.Namespace) -> int:
    from core.data.dataset import open_dataset
    from core.evaluate.predict import predict_dataset
    from core.evaluate.predictions import write_submission
    from core.model.io import load_model

    model = load_model(args.model)
    dataset = open_dataset(args.data)
    frame = predict_dataset(
        model,
        dataset,
        batch_size=args.batch_size,
        tta=args.tta,
        progress=ProgressLine("predict"),
        quality=args.quality_report is not None,
    )
    _report_skipped(frame)
    write_submission(frame, args.out)
    print(f"wrote {len(frame):,} predictions to {args.out}", file=sys.stderr)
    if args.quality_report is not None:
        write_quality_report(frame, args.quality_report)
        counts = count_flags(frame["quality"])
        summary = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        print(f"wrote the quality report to {args.quality_report} ({summary})", file=sys.stderr)
    return 0


def write_quality_report(frame, path: Path) -> Path:
    """`id,probability,quality` for every predicted patch, atomically; predictions made with TTA
    add `spread,certainty` (core.evaluate.uncertainty)."""
    import pandas as pd

    from core.evaluate.uncertainty import SPREAD_COLUMN, certainty_word, has_spread
    from core.files import atomic_write_csv

    report = pd.DataFrame({"id": frame["id"], "probability": frame["prob"], "quality": frame["quality"]})
    if has_spread(frame):
        report["spread"] = frame[SPREAD_COLUMN]
        report["certainty"] = frame[SPREAD_COLUMN].map(certainty_word)
    return atomic_write_csv(report, path)


def run_evaluate(args: argparse.Namespace) -> int:
    from core.data.dataset import open_dataset
    from core.evaluate.metrics import bootstrap_ci, metrics_at
    from core.evaluate.predict import predict_dataset
    from core.evaluate.predictions import cached_predictions, labelled_arrays
    from core.evaluate.sources import overlap_caption, training_overlap
    from core.model.io import load_model, resolve_model_path

    model_file = resolve_model_path(args.model)
    dataset = open_dataset(args.data)
    if dataset.labels is None:
        raise DatasetError(
            f"{args.data} is unlabelled ({dataset.layout} layout): evaluate needs labels. "
            "Use `predict` to score unlabelled patches."
        )
    progress = ProgressLine("evaluate")
    if args.no_cache:
        model = load_model(model_file)
        frame = predict_dataset(model, dataset, batch_size=args.batch_size, tta=args.tta, progress=progress)
    else:  # the model is loaded only when these predictions are not cached yet
        frame = cached_predictions(
            model_file,
            dataset,
            tta=args.tta,
            batch_size=args.batch_size,
            progress=progress,
        )
    _report_skipped(frame)
    if frame["label"].notna().sum() == 0:
        raise DatasetError(f"no labelled patch of {args.data} could be read.")
    labels, probs = labelled_arrays(frame)
    metrics = metrics_at(labels, probs, args.threshold)

    overlap = training_overlap(model_file, dataset, frame["id"])
    if args.json:
        fraction = overlap.fraction if overlap is not None else None
        print(
            json.dumps({**{key: metrics[key] for key in JSON_KEYS}, "training_overlap": fraction}, indent=2)
        )
        return 0
    print(overlap_caption(overlap), file=sys.stderr)
    intervals = {
        name: bootstrap_ci(labels, probs, name, args.threshold, n_boot=BOOTSTRAP_SAMPLES)
        for name in ("auc", "accuracy")
    }
    print(format_report(metrics, intervals, model=str(model_file), data=args.data, tta=args.tta))
    return 0


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_report(
    metrics: dict,
    intervals: dict[str, tuple[float, float] | None],
    *,
    model: str,
    data: str,
    tta: bool,
) -> str:
    """The human-readable table: metrics, intervals, confusion matrix."""
    (tn, fp), (fn, tp) = metrics["confusion"]
    rows = [
        ("AUC (ROC)", "auc"),
        ("accuracy", "accuracy"),
        ("balanced accuracy", "balanced_accuracy"),
        ("sensitivity (recall)", "sensitivity"),
        ("specificity", "specificity"),
        ("precision", "precision"),
        ("F1", "f1"),
        ("average precision", "average_precision"),
        ("log loss", "log_loss"),
        ("Brier score", "brier"),
        ("ECE (10 bins)", "ece"),
    ]
    counts = f"{metrics['n']:,} labelled patches: {tp + fn:,} tumour, {tn + fp:,} normal"
    views = "  with TTA (8 views)" if tta else ""
    lines = [
        f"model      {model}",
        f"data       {data}  ({counts})",
        f"threshold  {metrics['threshold']:g}  (tumour when prob >= threshold){views}",
        "",
        f"{'metric':<22}{'value':>8}   95% bootstrap interval",
    ]
    for title, key in rows:
        line = f"{title:<22}{_number(metrics[key]):>8}"
        if key in intervals:
            interval = intervals[key]
            line += "   " + (f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "n/a")
        lines.append(line.rstrip())
    for key, reason in metrics.get("undefined", {}).items():
        lines.append(f"  note: {key} {reason}")
    width = max(len(f"{v:,}") for v in (tn, fp, fn, tp)) + 2
    lines += [
        "",
        "confusion matrix (rows = true class, columns = predicted)",
        f"{'':<14}{'normal':>{width + 4}}{'tumour':>{width + 4}}",
        f"{'true normal':<14}{tn:>{width + 4},}{fp:>{width + 4},}",
        f"{'true tumour':<14}{fn:>{width + 4},}{tp:>{width + 4},}",
    ]
    return "\n".join(lines)
