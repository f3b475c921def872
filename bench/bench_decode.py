"""Decode and prepare throughput on real patches, and the wall time of `python -m core inspect`.

Figures (patches/s, median of --repeats runs, variants interleaved):
  decode_patch on Kaggle TIFFs and on PCam JPEGs, from the path (files warm in the page cache),
      reference: Pillow's plain `np.asarray(Image.open(path).convert("RGB"))` on the same files;
  prepare (files -> uint8 HDF5 cache) with 1 and 2 worker processes, reference: 1 worker;
  `python -m core inspect pcam-jpeg --json` (decodes all 21,745 JPEGs in 2 workers), reference:
      the same command with --no-scan (interpreter start + listing), and the 1-core decode rate.

Usage: /work/venv/bin/python bench/bench_decode.py [--repeats 3] [--quick] [--no-append]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import (
    KAGGLE_SAMPLE,
    PCAM_JPEG,
    PROJECT_DIR,
    SCRATCH,
    log,
    median,
    parser,
    report,
    spread,
    table,
    timed,
)

JPEG_PREPARE_N = 5000
TIFF_REPEAT = 3  # the 3,329 TIFFs linked 3 times under new ids: 9,987 files, past MIN_PARALLEL_PATCHES


def kaggle_files(limit: int | None = None) -> list[Path]:
    files = sorted((KAGGLE_SAMPLE / "train").glob("*.tif"))
    return files[:limit] if limit else files


def jpeg_files(limit: int | None = None) -> list[Path]:
    files = sorted((PCAM_JPEG / "0").glob("*.jpg")) + sorted((PCAM_JPEG / "1").glob("*.jpg"))
    if limit:  # a fixed, class-mixed subset
        files = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:limit]]
    return files


def jpeg_subset_folder(n: int) -> Path:
    """Class folders 0/ and 1/ of symlinks to n real JPEGs (a fixed random subset)."""
    folder = SCRATCH / f"pcam-jpeg-{n}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for source in jpeg_files(n):
        target = folder / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    (folder / ".complete").touch()
    return folder


def tiff_repeated_folder(repeat: int, limit: int | None = None) -> Path:
    """A Kaggle folder whose train/ holds every real TIFF linked `repeat` times under new ids."""
    folder = SCRATCH / f"kaggle-x{repeat}-{limit or 'all'}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "train").mkdir(parents=True)
    labels = dict(line.split(",") for line in (KAGGLE_SAMPLE / "train_labels.csv").read_text().split()[1:])
    rows = ["id,label"]
    for source in kaggle_files(limit):
        for k in range(repeat):
            item = f"{source.stem}r{k}"
            (folder / "train" / f"{item}.tif").symlink_to(source)
            rows.append(f"{item},{labels[source.stem]}")
    (folder / "train_labels.csv").write_text("\n".join(rows) + "\n")
    (folder / ".complete").touch()
    return folder


def decode_rate(files: list[Path], decode) -> float:
    seconds, _ = timed(lambda: [decode(f) for f in files])
    return len(files) / seconds


def pillow_decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def prepare_rate(folder: Path, workers: int) -> float:
    from core.data.cache import prepare
    from core.data.dataset import open_dataset

    dataset = open_dataset(folder)  # listing is outside the timing: prepare's own summary rate
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        summary = prepare(dataset, Path(tmp) / "cache.h5", workers=workers)
    return summary.patches_per_second


def inspect_seconds(folder: Path, *extra: str) -> float:
    command = [sys.executable, "-m", "core", "inspect", str(folder), "--json", *extra]
    seconds, result = timed(
        lambda: subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-500:]}")
    return seconds


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    from core.data.images import decode_patch

    SCRATCH.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    tiffs = kaggle_files(200 if quick else None)
    jpegs = jpeg_files(200 if quick else JPEG_PREPARE_N)
    jpeg_folder = jpeg_subset_folder(300 if quick else JPEG_PREPARE_N)
    tiff_folder = KAGGLE_SAMPLE
    tiff_big = tiff_repeated_folder(TIFF_REPEAT, 100 if quick else None)
    inspect_folder = jpeg_subset_folder(300) if quick else PCAM_JPEG
    n_inspect = sum(1 for _ in inspect_folder.rglob("*.jpg"))
    n_tiff_folder = 200 if quick else len(kaggle_files())
    if quick:
        tiff_folder = tiff_repeated_folder(1, 200)

    # Warm the page cache so every variant reads from memory, as later epochs do.
    for f in tiffs + jpegs:
        f.read_bytes()
    decode_patch(tiffs[0]), pillow_decode(tiffs[0])

    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)
        log(f"{key}: {value:,.1f}")

    for run in range(args.repeats):
        log(f"run {run + 1}/{args.repeats}")
        add("decode tiff", decode_rate(tiffs, decode_patch))
        add("pillow tiff", decode_rate(tiffs, pillow_decode))
        add("decode jpeg", decode_rate(jpegs, decode_patch))
        add("pillow jpeg", decode_rate(jpegs, pillow_decode))
        for workers in (1, 2):
            add(f"prepare tiff w{workers}", prepare_rate(tiff_folder, workers))
            add(f"prepare tiffx3 w{workers}", prepare_rate(tiff_big, workers))
            add(f"prepare jpeg w{workers}", prepare_rate(jpeg_folder, workers))
        add("inspect", inspect_seconds(inspect_folder))
        add("inspect no-scan", inspect_seconds(inspect_folder, "--no-scan"))

    m = {key: median(values) for key, values in results.items()}
    s = {key: spread(values) for key, values in results.items()}
    n_big = n_tiff_folder * TIFF_REPEAT if not quick else 100 * TIFF_REPEAT
    rows = [
        ["decode_patch, Kaggle TIFF", len(tiffs), f"{m['decode tiff']:,.0f} ({s['decode tiff']})",
         "Pillow, same files", f"{m['pillow tiff']:,.0f}", f"{m['decode tiff'] / m['pillow tiff']:.2f}×"],
        ["decode_patch, PCam JPEG", len(jpegs), f"{m['decode jpeg']:,.0f} ({s['decode jpeg']})",
         "Pillow, same files", f"{m['pillow jpeg']:,.0f}", f"{m['decode jpeg'] / m['pillow jpeg']:.2f}×"],
    ]  # fmt: skip
    for label, key, n in (
        ("prepare, Kaggle TIFF", "prepare tiff", n_tiff_folder),
        (f"prepare, Kaggle TIFF ×{TIFF_REPEAT} (symlinked ids)", "prepare tiffx3", n_big),
        ("prepare, PCam JPEG", "prepare jpeg", len(jpegs) if not quick else 300),
    ):
        rows.append([f"{label}, 1 worker", n, f"{m[key + ' w1']:,.0f} ({s[key + ' w1']})",
                     "decode_patch loop, 1 core", f"{m['decode ' + ('jpeg' if 'JPEG' in label else 'tiff')]:,.0f}",
                     f"{m[key + ' w1'] / m['decode ' + ('jpeg' if 'JPEG' in label else 'tiff')]:.2f}×"])  # fmt: skip
        rows.append([f"{label}, 2 workers", n, f"{m[key + ' w2']:,.0f} ({s[key + ' w2']})",
                     "prepare, 1 worker", f"{m[key + ' w1']:,.0f}", f"{m[key + ' w2'] / m[key + ' w1']:.2f}×"])  # fmt: skip
    scan_seconds = m["inspect"] - m["inspect no-scan"]
    scan_rate = n_inspect / scan_seconds if scan_seconds > 0.05 else float("nan")
    body = table(
        ["figure", "patches", "patches/s (min–max)", "reference (same run)", "reference patches/s", "ratio"],
        rows,
    )
    body += "\n\n" + table(
        ["command", "patches", "wall s (min–max)", "reference (same run)", "reference", "ratio"],
        [
            [f"`python -m core inspect {inspect_folder} --json`", n_inspect, f"{m['inspect']:.2f} ({s['inspect']})",
             "same with --no-scan (start-up + listing)", f"{m['inspect no-scan']:.2f} s",
             f"{m['inspect'] / m['inspect no-scan']:.2f}×"],
            ["↳ scan rate (wall minus --no-scan wall)", n_inspect, f"{scan_rate:,.0f} patches/s",
             "decode_patch JPEG loop, 1 core", f"{m['decode jpeg']:,.0f} patches/s",
             f"{scan_rate / m['decode jpeg']:.2f}×"],
        ],
    )  # fmt: skip
    notes = [
        "Files are read from the page cache (warmed before timing); a cold disk adds its read time.",
        "prepare rates are CacheSummary.patches_per_second (decode + HDF5 write, open_dataset excluded); "
        "2 workers include the spawn start-up of the worker processes (~0.5 s each).",
        f"core.data.scan.MIN_PARALLEL_PATCHES = 4096: the 3,329-file Kaggle sample runs inline even with "
        f"workers=2, so it cannot show a speed-up; the ×{TIFF_REPEAT} set (every TIFF symlinked {TIFF_REPEAT} times "
        "under new ids) does.",
        "ratio = figure / reference, both measured in this run; > 1 means faster than the reference "
        "(for wall times, > 1 means slower).",
    ]
    report("Decode, prepare and inspect throughput (bench/bench_decode.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
