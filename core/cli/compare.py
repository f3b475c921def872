"""The `compare` command: two models on the same labelled dataset, tested against each other.

  python -m core compare MODEL_A MODEL_B DATA [--threshold T] [--json]
      prints both AUCs, their difference with a 95 % interval and DeLong's p-value, both accuracies
      at T with the exact McNemar p-value, and how many patches the models call differently;
      --json prints core.diagnose.compare.COMPARISON_KEYS and training_overlap_a / _b: the share of
      the patches each model trained on (by pixel content; null for a model without a record)

Each MODEL is a .keras file or a run directory. Predictions go through the workspace's prediction
cache (shared with `evaluate` and the Evaluate page). Progress goes to stderr, so stdout stays clean.
"""

from __future__ import annotations

import argparse
import json

from core.cli.common import LABELLED_DATA_HELP, add_command, add_threshold_argument


def register(subparsers) -> None:
    compare = add_command(
        subparsers,
        "compare",
        run_compare,
        help="compare two models on one labelled dataset (DeLong, McNemar)",
        description="Compare MODEL_A with MODEL_B on the labelled DATA: AUC difference (DeLong) and "
        "accuracy at the threshold (exact McNemar).",
    )
    compare.add_argument("model_a", help="model A: a .keras file or a run directory")
    compare.add_argument("model_b", help="model B: a .keras file or a run directory")
    compare.add_argument("data", help=LABELLED_DATA_HELP)
    add_threshold_argument(compare)
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")


def run_compare(args: argparse.Namespace) -> int:
    from core.data.dataset import open_dataset
    from core.diagnose.compare import COMPARISON_KEYS, compare_paired, paired_predictions
    from core.formatting import ProgressLine
    from core.model.io import resolve_model_path

    model_a, model_b = resolve_model_path(args.model_a), resolve_model_path(args.model_b)
    dataset = open_dataset(args.data)
    paired = paired_predictions(model_a, model_b, dataset, progress=ProgressLine("predict"))
    result = compare_paired(paired, args.threshold)
    if args.json:
        overlaps = {f"training_overlap_{name}": _overlap_fraction(model, dataset, paired["id"])
                    for name, model in (("a", model_a), ("b", model_b))}  # fmt: skip
        print(json.dumps({**{key: result[key] for key in COMPARISON_KEYS}, **overlaps}, indent=2))
        return 0
    print(
        format_comparison(
            result, model_a=str(model_a), model_b=str(model_b), data=args.data, threshold=args.threshold
        )
    )
    return 0


def _overlap_fraction(model, dataset, ids) -> float | None:
    """The share of the compared patches the model trained on (by pixel content); None without a record."""
    from core.evaluate.sources import training_overlap

    found = training_overlap(model, dataset, ids)
    return found.fraction if found is not None else None


def format_comparison(result: dict, *, model_a: str, model_b: str, data: str, threshold: float) -> str:
    """The human-readable comparison."""
    from core.diagnose.compare import significance

    low, high = result["auc_diff_ci"]
    return "\n".join(
        [
            f"model A    {model_a}",
            f"model B    {model_b}",
            f"data       {data}  ({result['n']:,} labelled patches)",
            f"threshold  {threshold:g}  (tumour when prob >= threshold)",
            "",
            f"{'':<12}{'A':>8}{'B':>8}{'A - B':>9}",
            f"{'AUC':<12}{result['auc_a']:>8.4f}{result['auc_b']:>8.4f}{result['auc_diff']:>+9.4f}"
            f"   95% CI [{low:+.4f}, {high:+.4f}]",
            f"{'accuracy':<12}{result['accuracy_a']:>8.4f}{result['accuracy_b']:>8.4f}"
            f"{result['accuracy_a'] - result['accuracy_b']:>+9.4f}",
            "",
            f"DeLong test of the AUCs     p = {result['delong_p']:.4g}  ({significance(result['delong_p'])} at 5 %)",
            f"exact McNemar of accuracy   p = {result['mcnemar_p']:.4g}  "
            f"({significance(result['mcnemar_p'])} at 5 %)",
            f"patches called differently  {result['n_disagree']:,}",
        ]
    )
