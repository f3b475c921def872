"""The tile grid over a region at the model's resolution, and reading its pixels from the best level.

Geometry: the image (width x height level-0 px at `mpp` µm/px) is seen at the model's resolution
(`model_mpp`, PCam's 0.972 µm/px), where one model patch is 96 px. Tile (r, c) at stride s covers
model-resolution pixels [r·s, r·s+96) x [c·s, c·s+96) from the image's origin; only tiles that lie
wholly inside the image exist. Overlapping tiles (s < 96) are averaged on a grid of s x s cells,
so s must divide 96.

Reading: pixels come from the coarsest pyramid level that is still at least as fine as the model's
resolution, and are resampled (box filter when shrinking, bilinear when enlarging) so that one
model patch is exactly 96 px; a level at the model's resolution (within 0.1 %) is used as it is.
A band (one row of tiles, over the columns that need it) is read at a time, so memory stays flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.constants import IMAGE_SIZE
from core.region.reader import RegionImage, RegionImageError

STRIDES = (16, 24, 32, 48, 96)  # divisors of 96: overlapping tiles average on whole s x s cells
DEFAULT_STRIDE = 96
SAME_SCALE_TOLERANCE = 1e-3  # a level this close to the model's resolution is read as it is


@dataclass(frozen=True)
class Grid:
    """The tiles of a `width` x `height` level-0 image at `mpp`, seen at `model_mpp` with `stride`."""

    width: int
    height: int
    mpp: float
    model_mpp: float
    stride: int = DEFAULT_STRIDE

    @property
    def scale(self) -> float:
        """Model-resolution pixels per level-0 pixel (1.0 when the two agree within 0.1 %)."""
        scale = self.mpp / self.model_mpp
        return 1.0 if abs(scale - 1.0) < SAME_SCALE_TOLERANCE else scale

    @property
    def model_size(self) -> tuple[int, int]:
        """(width, height) of the whole image at the model's resolution."""
        return math.floor(self.width * self.scale + 0.01), math.floor(
            self.height * self.scale + 0.01
        )  # 0.01: float noise

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of tiles; (0, 0) when the image is smaller than one patch."""
        width, height = self.model_size
        if width < IMAGE_SIZE or height < IMAGE_SIZE:
            return 0, 0
        return (height - IMAGE_SIZE) // self.stride + 1, (width - IMAGE_SIZE) // self.stride + 1

    @property
    def cells_per_tile(self) -> int:
        return IMAGE_SIZE // self.stride

    @property
    def cell_shape(self) -> tuple[int, int]:
        """(rows, cols) of the s x s cells the tiles cover."""
        rows, cols = self.shape
        return rows + self.cells_per_tile - 1, cols + self.cells_per_tile - 1

    def tile_box(self, row, col) -> tuple:
        """Level-0 (x, y, width, height) of tile(s) (row, col); arrays broadcast."""
        size = IMAGE_SIZE / self.scale
        return (
            np.asarray(col) * self.stride / self.scale,
            np.asarray(row) * self.stride / self.scale,
            size,
            size,
        )

    @property
    def tile_area_mm2(self) -> float:
        return (IMAGE_SIZE * self.model_mpp / 1000.0) ** 2

    @property
    def cell_area_mm2(self) -> float:
        return (self.stride * self.model_mpp / 1000.0) ** 2


def check_stride(stride: int) -> int:
    if stride not in STRIDES:
        raise RegionImageError(
            f"stride must be one of {', '.join(map(str, STRIDES))} px (a divisor of 96); got {stride}."
        )
    return int(stride)


def read_level(image: RegionImage, grid: Grid) -> int:
    """The coarsest level at least as fine as the model's resolution (level 0 if none is)."""
    best = 0
    for level, downsample in enumerate(image.downsamples):
        if grid.mpp * downsample <= grid.model_mpp * (1 + SAME_SCALE_TOLERANCE):
            best = level if downsample > image.downsamples[best] else best
    return best


def resample_window(
    image: RegionImage, level: int, box: tuple[float, float, float, float], size: tuple[int, int]
) -> np.ndarray:
    """Pixels of the level-`level` window `box` = (x0, y0, x1, y1) (floats) resampled to `size` = (w, h)."""
    from PIL import Image

    x0, y0, x1, y1 = box
    left, top = math.floor(x0 + 1e-6), math.floor(y0 + 1e-6)
    right, bottom = math.ceil(x1 - 1e-6), math.ceil(y1 - 1e-6)
    pixels = image.read(level, left, top, right - left, bottom - top)
    if (right - left, bottom - top) == tuple(size) and abs(x0 - left) < 1e-6 and abs(y0 - top) < 1e-6:
        return pixels
    shrinking = (x1 - x0) > size[0]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    resized = Image.fromarray(pixels).resize(size, method, box=(x0 - left, y0 - top, x1 - left, y1 - top))
    return np.asarray(resized)


def read_band(
    image: RegionImage, grid: Grid, level: int, row: int, col_start: int, col_stop: int
) -> np.ndarray:
    """Model-resolution pixels (96, width, 3) under tiles (row, col_start … col_stop - 1)."""
    per_model = 1.0 / (grid.scale * image.downsamples[level])  # level px per model px
    mx0, my0 = col_start * grid.stride, row * grid.stride
    mx1, my1 = (col_stop - 1) * grid.stride + IMAGE_SIZE, my0 + IMAGE_SIZE
    box = (mx0 * per_model, my0 * per_model, mx1 * per_model, my1 * per_model)
    return resample_window(image, level, box, (mx1 - mx0, IMAGE_SIZE))


def cut_tiles(band: np.ndarray, grid: Grid, col_start: int, cols: np.ndarray) -> np.ndarray:
    """The (n, 96, 96, 3) tiles at columns `cols` of a band that starts at column `col_start`."""
    offsets = (np.asarray(cols) - col_start) * grid.stride
    return (
        np.stack([band[:, x : x + IMAGE_SIZE] for x in offsets])
        if len(offsets)
        else np.empty((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    )
