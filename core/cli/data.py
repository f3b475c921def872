"""`python -m core inspect PATH` and `python -m core prepare PATH --out CACHE.h5`.

`inspect` decodes every patch (unless --no-scan) and counts the input-quality flags of
core.data.quality (`ok`, `background`, `not_he`, `blurred`; a patch with two flags counts for both).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from core.cli.common import add_command, output_file
from core.data.cache import cache_path_for, prepare
from core.data.dataset import Dataset, open_dataset
from core.data.quality import count_flags, quality_labels
from core.data.scan import SCAN_CHUNK, map_chunks
from core.errors import DatasetError
from core.formatting import ProgressLine

MAX_PROBLEM_ROWS = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    inspect = add_command(
        subparsers,
        "inspect",
        run_inspect,
        help="detect a dataset's layout; count patches, classes and problems",
    )
    inspect.add_argument("path", help="dataset folder or file (Kaggle, PCam HDF5, class folders, cache)")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument(
        "--no-scan",
        action="store_true",
        help="do not decode every patch (fast; counts listed files, no quality counts)",
    )
    inspect.add_argument("--workers", type=int, default=2, help="decoding processes for the scan")

    prep = add_command(subparsers, "prepare", run_prepare, help="convert a dataset into one uint8 HDF5 cache")
    prep.add_argument("path", help="dataset folder or file")
    prep.add_argument(
        "--out", type=output_file, help="cache file to write (default: the workspace cache for this dataset)"
    )
    prep.add_argument("--workers", type=int, default=2, help="decoding processes")
    prep.add_argument("--chunk", type=int, default=512, help="patches per unit of work")


def run_inspect(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.path)
    if not args.no_scan:
        bar = ProgressLine("scanning") if sys.stderr.isatty() else None
        dataset.scan(workers=args.workers, progress=bar)
        if bar:
            bar.finish()
    summary = dataset.describe()
    if summary["n_patches"] == 0:
        raise DatasetError(f"no readable patches in {args.path} ({len(summary['problems'])} problems).")
    if not args.no_scan:
        bar = ProgressLine("checking quality") if sys.stderr.isatty() else None
        summary["quality"] = quality_counts(dataset, workers=args.workers, progress=bar)
        if bar:
            bar.finish()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary, str(dataset.path), scanned=not args.no_scan))
    return 0


def quality_counts(dataset: Dataset, *, workers: int = 2, progress=None) -> dict[str, int]:
    """{flag: patches with it, 'ok': patches with none} over every (readable) patch of `dataset`."""
    total = len(dataset)
    chunks = [list(range(start, min(start + SCAN_CHUNK, total))) for start in range(0, total, SCAN_CHUNK)]
    counts: Counter[str] = Counter(count_flags([]))
    done = 0
    if progress:
        progress(0, total)
    results = map_chunks(dataset, _quality_chunk, chunks, workers=workers)
    for chunk, chunk_counts in zip(chunks, results, strict=True):
        counts.update(chunk_counts)
        done += len(chunk)
        if progress:
            progress(done, total)
    return dict(counts)


def _quality_chunk(dataset: Dataset, indices: list[int]) -> dict[str, int]:
    return count_flags(quality_labels(dataset.read_batch(indices)))


def format_summary(summary: dict, path: str, *, scanned: bool) -> str:
    n, labelled = summary["n_patches"], summary["n_labelled"]
    lines = [
        f"dataset   {path}",
        f"layout    {summary['layout']}",
        f"patches   {n:,}"
        + ("" if scanned else " (listed, not decoded: drop --no-scan to check every file)"),
    ]
    if labelled:
        pos, neg = summary["n_positive"], summary["n_negative"]
        lines += [
            f"labelled  {labelled:,}",
            f"tumour    {pos:,} ({pos / labelled:.1%})   label 1",
            f"normal    {neg:,} ({neg / labelled:.1%})   label 0",
        ]
    else:
        lines.append("labels    none (unlabelled)")
    if "quality" in summary:
        counts = "  ".join(f"{name} {count:,}" for name, count in summary["quality"].items())
        lines.append(f"quality   {counts}")
    problems = summary["problems"]
    lines.append(f"problems  {len(problems):,}" + (" (items skipped)" if problems else ""))
    if problems:
        width = min(max(len(p["item"]) for p in problems[:MAX_PROBLEM_ROWS]), 48)
        for p in problems[:MAX_PROBLEM_ROWS]:
            lines.append(f"  {p['item'][:width]:<{width}}  {p['problem']}")
        if len(problems) > MAX_PROBLEM_ROWS:
            lines.append(f"  … and {len(problems) - MAX_PROBLEM_ROWS:,} more (use --json to list all)")
    return "\n".join(lines)


def run_prepare(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.path)
    out = args.out or cache_path_for(dataset)
    bar = ProgressLine("preparing")
    summary = prepare(dataset, out, workers=args.workers, chunk=args.chunk, progress=bar)
    bar.finish()
    skipped = f", {summary.n_skipped:,} unreadable skipped" if summary.n_skipped else ""
    print(
        f"wrote {summary.n_patches:,} patches{skipped} to {summary.path} in {summary.seconds:.1f} s "
        f"({summary.patches_per_second:,.0f} patches/s)"
    )
    return 0
