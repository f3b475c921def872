"""Where the tissue is: a low-resolution thumbnail, Otsu's threshold on its saturation, and the
share of each tile's footprint that is tissue, so that blank glass is never scored.

Glass is colourless (PCam's own criterion: HSV saturation below 0.07) and stained tissue is not.
Otsu's threshold separates the two on the thumbnail's saturation histogram; it is clamped to
SATURATION_BOUNDS so that an image that is all tissue (or all glass) is not split in two.
"""

from __future__ import annotations

import math

import numpy as np

from core.data.quality import GLASS_MAX_SATURATION
from core.region.budget import check_thumbnail_read
from core.region.reader import RegionImage
from core.region.tiling import Grid, resample_window

THUMBNAIL_SIDE = 2048  # px: the longest side of the thumbnail (mask, overlay, page view)
THUMBNAIL_BAND = 128  # thumbnail rows read at a time (fewer for a very wide level)
THUMBNAIL_READ_BYTES = 64 * 2**20  # level pixels read at a time for the thumbnail
# Otsu's cut is clamped to these; the upper one is PCam's glass criterion, so tissue it calls tissue
# is never masked out (on the bundled sample, no patch the quality gate passes loses its tissue).
SATURATION_BOUNDS = (0.03, GLASS_MAX_SATURATION)
MIN_TISSUE_FRACTION = 0.05  # a tile with less tissue than this in its footprint is not scored


def thumbnail_scale(image: RegionImage, side: int = THUMBNAIL_SIDE) -> float:
    """Thumbnail pixels per level-0 pixel (never more than 1)."""
    return min(1.0, side / max(image.width, image.height))


def thumbnail(image: RegionImage, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """The whole image as uint8 RGB, longest side <= `side`, read band by band from the best level."""
    scale = thumbnail_scale(image, side)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    level = max(
        (lv for lv, d in enumerate(image.downsamples) if d <= 1.0 / scale + 1e-6),
        key=lambda lv: image.downsamples[lv],
    )
    per_thumb = image.width / image.downsamples[level] / width  # level px per thumbnail px (x)
    per_thumb_y = image.level_sizes[level][1] / height
    band = _band_rows(image, level, per_thumb_y)
    bands = []
    for top in range(0, height, band):
        rows = min(band, height - top)
        box = (0.0, top * per_thumb_y, width * per_thumb, (top + rows) * per_thumb_y)
        bands.append(resample_window(image, level, box, (width, rows)))
    return np.concatenate(bands, axis=0)


def _band_rows(image: RegionImage, level: int, per_thumb_y: float) -> int:
    """Thumbnail rows read at a time: THUMBNAIL_BAND, fewer when the level is so wide that their pixels
    would exceed THUMBNAIL_READ_BYTES; ImageTooLargeError when even one row exceeds the decode budget."""
    level_width = image.level_sizes[level][0]
    check_thumbnail_read(image.name, level_width, math.ceil(per_thumb_y) + 1)
    row_bytes = level_width * (math.ceil(per_thumb_y) + 1) * 3
    return max(1, min(THUMBNAIL_BAND, THUMBNAIL_READ_BYTES // row_bytes))


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max per pixel, 0 for black."""
    rgb = rgb.astype(np.float32)
    brightest, darkest = rgb.max(axis=-1), rgb.min(axis=-1)
    return np.where(brightest > 0, (brightest - darkest) / np.maximum(brightest, 1.0), 0.0)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance."""
    histogram, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    weights = histogram.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)
    above = below[-1] - below
    mean_below = np.cumsum(weights * centres) / np.maximum(below, 1)
    mean_above = (np.sum(weights * centres) - np.cumsum(weights * centres)) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def tissue_mask(thumb: np.ndarray) -> tuple[np.ndarray, float]:
    """(bool mask of tissue pixels, the saturation threshold used)."""
    sat = saturation(thumb)
    threshold = float(np.clip(otsu_threshold(sat), *SATURATION_BOUNDS))
    return sat > threshold, threshold


def tile_tissue_fractions(mask: np.ndarray, grid: Grid, scale: float) -> np.ndarray:
    """(rows, cols) share of each tile's footprint on the mask (at `scale` mask px per level-0 px)
    that is tissue, from a summed-area table."""
    rows, cols = grid.shape
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    x, _, size, _ = grid.tile_box(0, np.arange(cols))
    _, y, _, _ = grid.tile_box(np.arange(rows), 0)

    def span(starts, limit):
        lo = np.clip(np.floor(starts * scale).astype(np.int64), 0, limit - 1)
        hi = np.clip(np.maximum(np.ceil((starts + size) * scale).astype(np.int64), lo + 1), 1, limit)
        return lo, hi

    x0, x1 = span(np.asarray(x, dtype=np.float64), mask.shape[1])
    y0, y1 = span(np.asarray(y, dtype=np.float64), mask.shape[0])
    total = table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0]
    area = np.outer(y1 - y0, x1 - x0)
    return total / np.maximum(area, 1)


def tissue_tiles(fractions: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: tiles with enough tissue to be scored."""
    return fractions >= MIN_TISSUE_FRACTION
