"""`python -m core calibrate MODEL DATA --out CALIBRATED.keras`: temperature scaling from the command line.

Fits the temperature on the labelled DATA (held-out patches the model did not train on, e.g. its
validation set) and writes a calibrated copy of MODEL (core.evaluate.calibration); prints the fit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli.common import add_batch_size_argument, add_command, add_model_data_arguments, output_file
from core.errors import InputError
from core.formatting import ProgressLine


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "calibrate",
        run_calibrate,
        help="fit temperature scaling on held-out labelled patches; write a calibrated model",
        description="Fit the temperature that makes MODEL's probabilities match the labels of DATA "
        "(patches it was not trained on) and write a copy of MODEL with it folded in.",
    )
    add_model_data_arguments(parser, labelled=True)
    parser.add_argument("--out", required=True, type=output_file, help="the calibrated .keras file to write")
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never MODEL itself)"
    )
    add_batch_size_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the fit as JSON")


def refuse_overwrite(out: Path, model_file: Path, *, force: bool) -> None:
    """InputError when --out is MODEL itself (even with --force) or an existing file without --force."""
    if out.exists() and out.resolve() == Path(model_file).resolve():
        raise InputError(f"--out {out} is the model being calibrated; write the calibrated copy elsewhere.")
    if out.exists() and not force:
        raise InputError(f"--out {out} already exists; pass --force to replace it.")


def run_calibrate(args: argparse.Namespace) -> int:
    from core.evaluate.calibration import calibrate_model_file, stored_temperature
    from core.model.io import read_model_meta, resolve_model_path

    model_file = resolve_model_path(args.model)
    refuse_overwrite(args.out, model_file, force=args.force)  # before the model runs over DATA
    before = stored_temperature(read_model_meta(model_file))  # 1.0: never calibrated
    fit = calibrate_model_file(
        args.model, args.data, args.out, batch_size=args.batch_size, progress=ProgressLine("scoring")
    )
    total = stored_temperature(read_model_meta(args.out))  # a calibrated model's T multiplies on
    if args.json:
        print(json.dumps({**fit.summary(), "model_temperature": total, "out": str(args.out)}, indent=2))
        return 0
    print(f"temperature {fit.temperature:.4f} fitted on {fit.n:,} patches", end="")
    print(f" (the model's total is now {total:.4f}: it was calibrated before)" if before != 1.0 else "")
    print(f"log loss {fit.log_loss_before:.4f} -> {fit.log_loss_after:.4f}")
    print(f"ECE      {fit.ece_before:.4f} -> {fit.ece_after:.4f}")
    print(f"wrote {args.out}")
    return 0
