"""The `heatmap` and `heatmap-job` commands: a tumour-probability map over a region image or slide.

python -m core heatmap MODEL IMAGE --out DIR [--stride PX] [--mpp M] [--threshold T] [--batch-size B]
        [--uncertainty]
    writes probabilities.npy (and with --uncertainty spread.npy), quality.npy, overlay.png, thumbnail.png, tiles.geojson and summary.json
    to DIR (core.region.outputs), printing progress (tiles/s, ETA) on stderr
python -m core heatmap-job MODEL IMAGE --key KEY [--stride PX] [--mpp M] [--threshold T]
    the same, as the Region page's background job (core.region.jobs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import (
    MODEL_HELP,
    add_batch_size_argument,
    add_command,
    add_threshold_argument,
    add_uncertainty_argument,
)


def _shared_arguments(parser: argparse.ArgumentParser) -> None:
    from core.region.tiling import DEFAULT_STRIDE, STRIDES

    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "image", help="a region image (.png .jpg .tif, pyramidal or OME-TIFF) or a slide (.svs …)"
    )
    parser.add_argument("--stride", type=int, choices=STRIDES, default=DEFAULT_STRIDE,
                        help="px at the model's resolution between tiles (96 = no overlap; 48 or 32 average overlaps)")  # fmt: skip
    parser.add_argument(
        "--mpp", type=float, help="the image's µm per pixel, for images whose file does not say"
    )
    add_threshold_argument(parser, "P(tumour) at or above which a cell counts as tumour (contour, area)")


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "heatmap",
        run_heatmap_command,
        help="score a region image or slide tile by tile and write a tumour-probability heatmap",
        description="Mask the tissue, score every tissue tile (96 px at the model's resolution) in "
        "streamed batches and write the heatmap outputs to --out.",
    )
    _shared_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="the output folder")
    add_batch_size_argument(parser, "tiles per forward pass")
    add_uncertainty_argument(parser)
    parser.add_argument("--annotations", type=Path,
                        help="a QuPath GeoJSON of this image: tile metrics against it, and outlines.geojson")  # fmt: skip

    job = add_command(
        subparsers,
        "heatmap-job",
        run_job_command,
        help="the Region page's background heatmap (reports in <workspace>/cache/region/jobs/KEY)",
        description="Score IMAGE with MODEL as a job the Region page can follow and stop.",
    )
    _shared_arguments(job)
    job.add_argument("--key", help="the job key the page waits on (default: computed)")


def run_heatmap_command(args: argparse.Namespace) -> int:
    from core.model.io import load_model
    from core.region.heatmap import open_checked, run_heatmap

    if args.annotations:  # a bad file fails before any scoring
        from core.slides.annotations import read_annotations

        read_annotations(args.annotations)
    open_checked(args.image, stride=args.stride, mpp=args.mpp)[
        0
    ].close()  # a bad image fails before TensorFlow
    model = load_model(args.model)
    summary = run_heatmap(model, args.image, args.out, stride=args.stride, mpp=args.mpp,
                          threshold=args.threshold, batch_size=args.batch_size, uncertainty=args.uncertainty,
                          progress=_printer())  # fmt: skip
    print(
        f"{summary['n_scored']:,} of {summary['n_tiles']:,} tiles scored ({summary['n_flagged']:,} flagged) in "
        f"{summary['seconds']:.1f} s; tumour area {summary['tumour_area_mm2']:.3f} mm² at "
        f"{summary['threshold']:g}; outputs in {args.out}"
    )
    if args.uncertainty:
        print(f"{summary['n_uncertain_tumour']:,} tumour tiles uncertain (8-view spread ≥ "
              f"{summary['uncertain_spread']:g}); spread.npy beside the probabilities")  # fmt: skip
    if args.annotations:
        _print_tile_metrics(args.out, args.annotations)
    return 0


def _print_tile_metrics(out: Path, annotations: Path) -> None:
    from core.slides.outputs import annotate_heatmap

    measured = annotate_heatmap(out, annotations)
    shown = {key: "n/a" if value is None else f"{value:.3f}" for key, value in measured.items()}
    print(f"against {annotations.name}: {measured['tile_positive']} of {measured['tile_n']} tiles tumour; tile AUC "
          f"{shown['tile_auc']}, sensitivity {shown['tile_sensitivity']}, specificity {shown['tile_specificity']}, "
          f"Dice {shown['dice']}; the model's outline in outlines.geojson")  # fmt: skip


def _printer():
    def show(info: dict) -> None:
        eta = info.get("eta_s")
        eta_text = f" · ETA {eta:.0f} s" if eta is not None else ""
        sys.stderr.write(
            f"\r{info['done']:,}/{info['total']:,} tiles · {info['patches_per_s']:.0f} tiles/s{eta_text}   "
        )
        if info["done"] == info["total"]:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run_job_command(args: argparse.Namespace) -> int:
    from core.region.jobs import run_job

    status = run_job(
        args.model, args.image, key=args.key, stride=args.stride, mpp=args.mpp, threshold=args.threshold
    )
    if status.get("state") != "finished":
        print(f"{status.get('state')}: {status.get('error') or ''}".strip())
        return 1
    return 0
