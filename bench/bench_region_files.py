"""Region output files: the bytes of thumbnail.png (core.region.outputs.thumbnail_file) against the plain
RGB PNG of the plan's thumbnail it replaced, and its colour error, on two thumbnails of real patches:
a 2,048 px 'slide' (tissue in an irregular ellipse on glass, drawn from level 0 at 48x64 patches) and a
fully dense 2,016 px mosaic (every pixel tissue at half a patch's resolution: the worst case).

Usage: python bench/bench_region_files.py [--data /work/shared/data/kaggle-sample]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.images import decode_patch  # noqa: E402
from core.region.outputs import png_bytes, thumbnail_file  # noqa: E402


def slide_thumbnail(files: list[Path], rng) -> np.ndarray:
    rows, cols = 48, 64
    canvas = np.full((rows * 96, cols * 96, 3), 235, np.uint8)
    yy, xx = np.mgrid[0:rows, 0:cols]
    ellipse = ((yy - rows / 2) / (rows * 0.42)) ** 2 + ((xx - cols / 2) / (cols * 0.45)) ** 2
    for r, c in zip(*np.nonzero(ellipse + rng.normal(0, 0.08, (rows, cols)) < 1), strict=True):
        canvas[r * 96 : (r + 1) * 96, c * 96 : (c + 1) * 96] = decode_patch(files[rng.integers(len(files))])
    image = Image.fromarray(canvas)
    scale = 2048 / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR))


def dense_mosaic(files: list[Path]) -> np.ndarray:
    patches = np.stack([decode_patch(path) for path in files[: 16 * 21]])
    return patches.reshape(16, 21, 96, 96, 3).transpose(0, 2, 1, 3, 4).reshape(16 * 96, 21 * 96, 3)


def measure(name: str, thumb: np.ndarray) -> None:
    started = time.process_time()
    data, factor = thumbnail_file(thumb)
    cpu = time.process_time() - started
    image = Image.open(io.BytesIO(data))
    reference = Image.fromarray(thumb).resize(image.size, Image.Resampling.LANCZOS)
    error = np.abs(np.asarray(image.convert("RGB"), float) - np.asarray(reference, float)).mean()
    before = len(png_bytes(thumb))
    print(
        f"| {name} | {thumb.shape[1]}x{thumb.shape[0]} | {before / 1e6:.2f} MB | {image.width}x{image.height} | "
        f"{len(data) / 1e6:.2f} MB | {len(data) / before:.3f} | {error:.1f} | {cpu:.2f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/work/shared/data/kaggle-sample")
    args = parser.parse_args()
    files = sorted(Path(args.data, "train").glob("*.tif"))
    print("| thumbnail | plan px | RGB PNG | file px | thumbnail.png | ÷ RGB PNG | mean error /255 | CPU |")
    print("|---|---|---|---|---|---|---|---|")
    measure("slide, tissue on glass", slide_thumbnail(files, np.random.default_rng(0)))
    measure("dense mosaic (worst case)", dense_mosaic(files))


if __name__ == "__main__":
    main()
