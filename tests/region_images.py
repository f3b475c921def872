"""Shared by the region tests: region images built at test time from real bundled patches.

Not a test module. A mosaic is a grid of real sample patches (with known labels) that the input-quality
gate passes, with one blank (white glass) band of tiles, written as PNG or as a tiled pyramidal TIFF
with resolution tags (tifffile), at PCam's resolution, so at stride 96 each tile is exactly one patch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import IMAGE_SIZE, PCAM_MPP
from core.settings import SAMPLE_DATASET

MOSAIC_ROWS, MOSAIC_COLS = 4, 6  # patch rows and columns of tissue
BLANK_ROW = 2  # the row of tiles (of the image) left blank: glass
TIFF_TILE = 128


@dataclass
class Mosaic:
    pixels: np.ndarray  # (H, W, 3) uint8, the whole image
    patches: np.ndarray  # (n, 96, 96, 3) the patches placed, row by row
    labels: np.ndarray  # (n,) their Kaggle labels
    cells: list[tuple[int, int]]  # the (row, col) of the image's tile grid that holds each patch


def mosaic() -> Mosaic:
    """MOSAIC_ROWS x MOSAIC_COLS real patches the quality gate passes (both labels), blank band inside."""
    from core.data.images import decode_patch
    from core.data.quality import quality_labels

    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:80]
    patches = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{r['id']}.tif") for r in rows])
    keep = [k for k, label in enumerate(quality_labels(patches)) if label == "ok"][
        : MOSAIC_ROWS * MOSAIC_COLS
    ]
    labels = np.array([int(rows[k]["label"]) for k in keep])
    assert set(labels) == {0, 1}
    image = np.full(((MOSAIC_ROWS + 1) * IMAGE_SIZE, MOSAIC_COLS * IMAGE_SIZE, 3), 255, dtype=np.uint8)
    cells = []
    for n, k in enumerate(keep):
        row, col = divmod(n, MOSAIC_COLS)
        row += row >= BLANK_ROW
        image[row * IMAGE_SIZE : (row + 1) * IMAGE_SIZE, col * IMAGE_SIZE : (col + 1) * IMAGE_SIZE] = patches[
            k
        ]
        cells.append((row, col))
    return Mosaic(image, patches[keep], labels, cells)


def write_png(path: Path, pixels: np.ndarray, mpp: float | None = None) -> Path:
    from PIL import Image

    options = {"dpi": (25400 / mpp, 25400 / mpp)} if mpp else {}
    Image.fromarray(pixels).save(path, **options)
    return path


def write_pyramid_tiff(path: Path, pixels: np.ndarray, mpp: float | None = PCAM_MPP, levels: int = 2) -> Path:
    """A tiled (zlib) pyramidal TIFF, each level a top-level page (what OpenSlide's generic-tiff reads),
    with resolution tags in pixels per centimetre (none when `mpp` is None)."""
    import tifffile

    with tifffile.TiffWriter(path) as writer:
        for level in range(levels):
            step = 2**level
            tags = {"resolution": (1e4 / (mpp * step),) * 2, "resolutionunit": "CENTIMETER"} if mpp else {}
            writer.write(pixels[::step, ::step], tile=(TIFF_TILE, TIFF_TILE), compression="zlib", photometric="rgb",
                         subfiletype=1 if level else 0, **tags)  # fmt: skip
    return path
