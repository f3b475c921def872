"""The `slides` command: score a cohort of slides and measure it at the slide level.

python -m core slides MODEL SLIDES... --out DIR [--labels CSV] [--annotations DIR] [--aggregate NAME]
    [--stride PX] [--threshold T] [--slide-threshold S] [--region-class NAME] [--uncertainty]
    [--scheduler ADDRESS] [--json]
    writes DIR/<slide>/ (core heatmap's outputs, outlines.geojson, slide.json), DIR/slides.csv and
    DIR/summary.json (core.slides.cohort); exit 0 when every slide is done or cached, 1 otherwise
python -m core slides-job MODEL FOLDER --key KEY [the same options]
    the same, as the Slides page's background job (core.slides.jobs)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import (
    MODEL_HELP,
    add_batch_size_argument,
    add_command,
    add_threshold_argument,
    add_uncertainty_argument,
    job_key_argument,
    unit_interval,
)
from core.constants import DEFAULT_THRESHOLD, SLIDE_BATCH_SIZE


def register(subparsers) -> None:
    parser = add_command(
        subparsers, "slides", run_slides_command,
        help="score a cohort of slides: a heatmap per slide, slide scores, slide-level metrics",
        description="Score every slide (files and/or folders of them), one task per slide; slides already "
        "complete for the same model and options are not recomputed.",
    )  # fmt: skip
    _cohort_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="the output folder")
    parser.add_argument(
        "--scheduler", help="a Dask scheduler address (tcp://host:8786); default: this process"
    )
    parser.add_argument(
        "--slide-threshold", type=unit_interval, default=DEFAULT_THRESHOLD,
        help=f"slide score at or above which a slide is called tumour (default {DEFAULT_THRESHOLD}); choose "
        "it on the slide ROC: the summary lists Youden's J and sensitivity≥0.95 of the labelled slides",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    job = add_command(subparsers, "slides-job", run_job_command,
                      help="the Slides page's background cohort (reports in <workspace>/cache/slides/jobs/KEY)")  # fmt: skip
    _cohort_arguments(job)
    job.add_argument("--key", required=True, type=job_key_argument, help="the job key the page waits on")


def _cohort_arguments(parser: argparse.ArgumentParser) -> None:
    from core.region.tiling import DEFAULT_STRIDE, STRIDES
    from core.slides.aggregate import AGGREGATIONS, DEFAULT_AGGREGATE

    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "slides", nargs="+", help="slide files and/or folders of them (any format core heatmap reads)"
    )
    parser.add_argument(
        "--labels", type=Path, help="a CSV with the columns slide,label (slide = file name without extension)"
    )
    parser.add_argument("--annotations", type=Path, help="a folder of <slide>.geojson QuPath annotations")
    parser.add_argument("--region-class", help="an annotation class that limits scoring to its area")
    parser.add_argument("--aggregate", choices=tuple(AGGREGATIONS), default=DEFAULT_AGGREGATE,
                        help=f"how tile probabilities become the slide score (default {DEFAULT_AGGREGATE})")  # fmt: skip
    parser.add_argument(
        "--stride", type=int, choices=STRIDES, default=DEFAULT_STRIDE, help="px between tiles"
    )
    add_threshold_argument(parser, "P(tumour) at or above which a tile and a cell count as tumour")
    add_batch_size_argument(parser, "tiles per forward pass", default=SLIDE_BATCH_SIZE)
    add_uncertainty_argument(parser)


def _options(args: argparse.Namespace):
    from core.slides.task import SlideOptions

    return SlideOptions(stride=args.stride, threshold=args.threshold, batch_size=args.batch_size,
                        region_class=args.region_class, uncertainty=args.uncertainty)  # fmt: skip


def run_slides_command(args: argparse.Namespace) -> int:
    from core.slides.cohort import run_cohort

    summary = run_cohort(args.model, args.slides, args.out, options=_options(args), labels_path=args.labels,
                         annotations_dir=args.annotations, aggregate=args.aggregate, scheduler=args.scheduler,
                         progress=_show_progress, slide_threshold=args.slide_threshold)  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, args.out)
    return 0 if summary["n_failed"] == 0 else 1


def _show_progress(info: dict) -> None:
    last = info["last"]
    eta = f" · ETA {info['eta_s']:.0f} s" if info.get("eta_s") is not None else ""
    reason = f": {last['message']}" if last["status"] == "failed" else ""
    sys.stderr.write(f"[{info['done']}/{info['total']}] {last['slide']} {last['status']}{reason} · "
                     f"{info['tiles_per_s']:.0f} tiles/s{eta}\n")  # fmt: skip
    sys.stderr.flush()


def _print_summary(summary: dict, out: Path) -> None:
    line = f"{summary['n_slides']} slides, {summary['n_failed']} failed, {summary['n_cached']} cached"
    if summary.get("auc") is not None:
        low, high = summary["auc_ci"] or (float("nan"), float("nan"))
        line += f"; slide AUC ({summary['aggregate']}) {summary['auc']:.3f} [{low:.3f}, {high:.3f}]"
        line += _calls_at_slide_threshold(summary)
    if summary.get("tile_auc") is not None:
        line += f"; tile AUC {summary['tile_auc']:.3f} over {summary['tile_n']:,} tiles"
    print(f"{line}; slides.csv and summary.json in {out}")


def _calls_at_slide_threshold(summary: dict) -> str:
    """'; at slide threshold 0.500: sensitivity 1.000, specificity 0.000 (Youden's J on these slides 0.912)'."""
    words = [f"{name} {'n/a' if summary[name] is None else format(summary[name], '.3f')}"
             for name in ("sensitivity", "specificity")]  # fmt: skip
    youden = (summary.get("slide_threshold_presets") or {}).get("youden")
    hint = f" (Youden's J on these slides: {youden:.3f})" if youden is not None else ""
    return f"; at slide threshold {summary['slide_threshold']:.3f}: {', '.join(words)}{hint}"


def run_job_command(args: argparse.Namespace) -> int:
    from core.slides.jobs import run_job

    if len(args.slides) != 1:
        print("error: a slides job scores one folder", file=sys.stderr)
        return 2
    status = run_job(args.model, args.slides[0], key=args.key, labels=args.labels, annotations=args.annotations,
                     options=_options(args), aggregate=args.aggregate)  # fmt: skip
    if status.get("state") != "finished":
        print(f"{status.get('state')}: {status.get('error') or ''}".strip())
        return 1
    return 0
