"""What a heatmap run leaves in its output folder, each file written atomically:

- probabilities.npy  (rows, cols) float32 P(tumour) of tile (r, c); NaN where not scored
- quality.npy        (rows, cols) uint8: OR of the stored bits (core.data.quality.FLAGS) of each scored
                     tile's flags, in the QUALITY_FORMAT summary.json names
- spread.npy         (rows, cols) float32, only from a run with uncertainty: the spread of each tile's 8
                     dihedral views (core.evaluate.uncertainty), NaN where not scored; summary.json
                     then says `uncertainty: true` and counts `n_uncertain_tumour`
- overlay.png        the thumbnail with the averaged map, the threshold contour and a colour bar whose
                     labels scale with the image (legible when the whole overlay is on a screen)
- thumbnail.png      the thumbnail alone (what the page draws the map on), its longest side at most
                     THUMBNAIL_FILE_SIDE px in 256 colours: ~0.4 MB instead of 4.6 MB (BENCHMARKS.md);
                     summary.json's `thumbnail_scale` is this file's
- tiles.geojson      a FeatureCollection of the scored tiles as polygons in level-0 pixel coordinates,
                     with `probability` (and QuPath's objectType/measurements/classification; with
                     uncertainty a `spread` measurement too), streamed
- summary.json       image, size, µm/px, stride, grid, counts, tumour area, seconds; written last, so
                     a folder with a summary.json is complete

A folder whose summary.json names another QUALITY_FORMAT (its quality.npy's bits may mean other flags)
reads as absent, to be computed again; a summary without one predates the versioning and is format 1.
A folder's spread.npy is read only when its summary says `uncertainty: true` (a run without it removes
any older spread.npy first), so a folder without the layer is never read as having it.

The map shown and measured averages overlapping tiles on the stride's s x s cells, leaving out tiles
the input-quality gate flagged. Tumour area = the cells whose average is at or above the threshold.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

from core.data.quality import (  # noqa: F401  (FLAG_BITS: re-exported for the heatmap job)
    FLAG_BITS,
    FLAGS,
    QUALITY_FLAGS,
    QUALITY_FORMAT,
    WITHHOLDING_FLAGS,
    quality_label,
)
from core.evaluate.heatmaps import DEFAULT_COLORMAP, colorize, labelled_colour_bar
from core.evaluate.uncertainty import UNCERTAIN_SPREAD, uncertain_mask
from core.files import atomic_file, atomic_write_bytes, atomic_write_json
from core.region.tiling import Grid

WITHHOLDING_BITS = sum(FLAG_BITS[flag] for flag in WITHHOLDING_FLAGS)

OUTPUT_FILES = (
    "probabilities.npy",
    "quality.npy",
    "overlay.png",
    "thumbnail.png",
    "tiles.geojson",
    "summary.json",
)
SPREAD_FILE = "spread.npy"  # the optional uncertainty layer, beside OUTPUT_FILES
OVERLAY_ALPHA = 0.45
CONTOUR_COLOUR = (255, 255, 255)
TUMOUR_CLASS = {"name": "Tumour", "color": [228, 87, 86]}
NORMAL_CLASS = {"name": "Normal", "color": [76, 120, 168]}
THUMBNAIL_FILE_SIDE = 1024  # px: thumbnail.png's longest side (the page's map; the overlay keeps the plan's)
THUMBNAIL_COLOURS = 256  # an adaptive palette: mean error 1.7 of 255 levels on real H&E, a third of the bytes
BAR_TEXT_SHARE = 60  # the overlay's colour-bar labels are 1/60 of its width tall (34 px at 2,048 px)...
BAR_TEXT_MIN = 12  # ...and never below this


def flags_of(bits: int) -> tuple[str, ...]:

    return tuple(flag.name for flag in FLAGS if bits & (1 << flag.bit))


def cell_map(
    probabilities: np.ndarray, flags: np.ndarray, grid: Grid, *, leave_out_flagged: bool = True
) -> np.ndarray:
    """The mean P(tumour) of the tiles covering each s x s cell; NaN where none was scored."""
    valid = ~np.isnan(probabilities)
    if leave_out_flagged:  # the flags that withhold a call; an unusual (out_of_distribution) tile counts
        valid &= (flags & WITHHOLDING_BITS) == 0
    values = np.where(valid, probabilities, 0.0).astype(np.float64)
    sums = np.zeros(grid.cell_shape)
    counts = np.zeros(grid.cell_shape)
    rows, cols = grid.shape
    for dy in range(grid.cells_per_tile):
        for dx in range(grid.cells_per_tile):
            sums[dy : dy + rows, dx : dx + cols] += values
            counts[dy : dy + rows, dx : dx + cols] += valid
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)


def tumour_area_mm2(cells: np.ndarray, grid: Grid, threshold: float) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.count_nonzero(cells >= threshold) * grid.cell_area_mm2)


# ----------------------------------------------------------------------------- overlay


def cells_on_thumbnail(
    cells: np.ndarray, grid: Grid, thumb_shape: tuple[int, int], thumb_scale: float
) -> np.ndarray:
    """The cell map resampled (nearest) onto the thumbnail's pixels; NaN outside every cell."""
    height, width = thumb_shape
    cell_px = grid.stride / grid.scale * thumb_scale  # thumbnail px per cell
    row_index = np.floor((np.arange(height) + 0.5) / cell_px).astype(np.int64)
    col_index = np.floor((np.arange(width) + 0.5) / cell_px).astype(np.int64)
    inside_rows, inside_cols = row_index < cells.shape[0], col_index < cells.shape[1]
    out = np.full((height, width), np.nan, dtype=np.float32)
    if inside_rows.any() and inside_cols.any():
        picked = cells[row_index[inside_rows]][:, col_index[inside_cols]]
        out[np.ix_(inside_rows, inside_cols)] = picked
    return out


def contour(above: np.ndarray) -> np.ndarray:
    """Pixels on the edge of the `above` region (bool), one pixel wide, inside it."""
    padded = np.pad(above, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return above & ~interior


def overlay_image(
    thumb: np.ndarray,
    heat: np.ndarray,
    threshold: float,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = OVERLAY_ALPHA,
) -> np.ndarray:
    """The thumbnail with the heat (NaN = untouched) blended on, the threshold contour drawn, and a
    colour bar (P(tumour) 0 to 1) below: uint8 RGB."""
    scored = ~np.isnan(heat)
    colours = colorize(np.nan_to_num(heat, nan=0.0), colormap).astype(np.float32)
    blended = thumb.astype(np.float32)
    blended[scored] = (1 - alpha) * blended[scored] + alpha * colours[scored]
    picture = np.rint(blended).clip(0, 255).astype(np.uint8)
    with np.errstate(invalid="ignore"):
        picture[contour(heat >= threshold)] = CONTOUR_COLOUR
    width = max(picture.shape[1], 160)
    bar = labelled_colour_bar(
        colormap,
        "P(tumour) 0",
        f"1   (contour at {threshold:.2f})",
        width=width,
        text_px=max(BAR_TEXT_MIN, width // BAR_TEXT_SHARE),
    )
    if picture.shape[1] < width:
        picture = np.pad(picture, ((0, 0), (0, width - picture.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([picture, bar], axis=0)


def thumbnail_file(thumb: np.ndarray) -> tuple[bytes, float]:
    """thumbnail.png's bytes, and its pixels per pixel of `thumb`: the longest side brought down to
    THUMBNAIL_FILE_SIDE (Lanczos), stored with an adaptive palette of THUMBNAIL_COLOURS."""
    from PIL import Image

    image = Image.fromarray(thumb)
    factor = min(1.0, THUMBNAIL_FILE_SIDE / max(image.size))
    if factor < 1.0:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(THUMBNAIL_COLOURS, method=Image.Quantize.MEDIANCUT).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue(), image.width / thumb.shape[1]


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- GeoJSON


def _feature(x: float, y: float, size: float, probability: float, bits: int, threshold: float,
             spread: float | None = None) -> dict:  # fmt: skip
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    label = quality_label(flags_of(bits))
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[round(a, 2), round(b, 2)] for a, b in ring]]},
        "properties": {
            "objectType": "detection",
            "probability": round(probability, 6),
            "quality": label,
            "classification": TUMOUR_CLASS if probability >= threshold else NORMAL_CLASS,
            "measurements": {"probability": round(probability, 6)},
        },
    }
    if spread is not None:  # the 8 dihedral views' spread (core.evaluate.uncertainty)
        feature["properties"]["measurements"]["spread"] = round(spread, 6)
    return feature


def write_geojson(
    path: Path, probabilities: np.ndarray, flags: np.ndarray, grid: Grid, threshold: float,
    spread: np.ndarray | None = None,
) -> int:  # fmt: skip
    """Stream the scored tiles to `path` (temp file + rename), each with its spread as a measurement
    when `spread` is given; returns how many were written."""
    count = 0
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write('{"type": "FeatureCollection", "features": [\n')
        for row, col in zip(*np.nonzero(~np.isnan(probabilities)), strict=True):
            x, y, size, _ = grid.tile_box(row, col)
            feature = _feature(float(x), float(y), float(size), float(probabilities[row, col]),
                               int(flags[row, col]), threshold,
                               None if spread is None else float(spread[row, col]))  # fmt: skip
            handle.write((",\n" if count else "") + json.dumps(feature))
            count += 1
        handle.write("\n]}\n")
    return count


# ----------------------------------------------------------------------------- the folder


def flag_counts(probabilities: np.ndarray, flags: np.ndarray) -> dict[str, int]:

    scored = ~np.isnan(probabilities)
    return {flag: int(np.count_nonzero(scored & (flags & FLAG_BITS[flag] > 0))) for flag in QUALITY_FLAGS}


def summary_of(plan, probabilities: np.ndarray, flags: np.ndarray, threshold: float, seconds: float,
               model_path: str | None) -> dict:  # fmt: skip
    grid, image = plan.grid, plan.image
    cells = cell_map(probabilities, flags, grid)
    scored = int(np.count_nonzero(~np.isnan(probabilities)))
    flagged = int(np.count_nonzero(~np.isnan(probabilities) & (flags > 0)))
    return {
        "image": str(image.path),
        "reader": image.backend,
        "width": image.width,
        "height": image.height,
        "mpp": grid.mpp,
        "mpp_source": plan.mpp_source,
        "model": model_path,
        "model_mpp": grid.model_mpp,
        "level": plan.level,
        "level_downsample": image.downsamples[plan.level],
        "stride": grid.stride,
        "grid": list(grid.shape),
        "n_tiles": int(grid.shape[0] * grid.shape[1]),
        "n_tissue": int(plan.tissue.sum()),
        "n_scored": scored,
        "n_flagged": flagged,
        "flags": flag_counts(probabilities, flags),
        "threshold": threshold,
        "tumour_area_mm2": round(tumour_area_mm2(cells, grid, threshold), 6),
        "scored_area_mm2": round(float(np.count_nonzero(~np.isnan(cells)) * grid.cell_area_mm2), 6),
        "thumbnail_scale": plan.thumb_scale,
        "saturation_threshold": round(plan.saturation_threshold, 4),
        "seconds": round(seconds, 2),
        "tiles_per_s": round(scored / seconds, 1) if seconds > 0 else None,
        "quality_format": QUALITY_FORMAT,  # what quality.npy's bits mean
    }


def n_uncertain_tumour(probabilities: np.ndarray, spread: np.ndarray, threshold: float) -> int:
    """Scored tiles at or above `threshold` whose 8 views' spread is at least UNCERTAIN_SPREAD."""
    with np.errstate(invalid="ignore"):
        tumour = probabilities >= threshold
    return int(np.count_nonzero(tumour & uncertain_mask(spread)))


def write_outputs(out_dir, plan, probabilities, flags, *, threshold: float, started: float,
                  model_path: str | None = None, spread: np.ndarray | None = None) -> dict:  # fmt: skip
    """Write every output file of the run to `out_dir` (spread.npy with `spread`); summary.json last.
    Returns the summary."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # until the new one is written, the folder is not complete
    (out / SPREAD_FILE).unlink(missing_ok=True)  # an older run's layer never passes for this one's
    if spread is not None:
        atomic_write_bytes(out / SPREAD_FILE, npy_bytes(spread.astype(np.float32)))
    atomic_write_bytes(out / "probabilities.npy", npy_bytes(probabilities))
    atomic_write_bytes(out / "quality.npy", npy_bytes(flags))
    heat = cells_on_thumbnail(
        cell_map(probabilities, flags, plan.grid), plan.grid, plan.thumb.shape[:2], plan.thumb_scale
    )
    thumbnail, factor = thumbnail_file(plan.thumb)
    atomic_write_bytes(out / "thumbnail.png", thumbnail)
    atomic_write_bytes(out / "overlay.png", png_bytes(overlay_image(plan.thumb, heat, threshold)))
    write_geojson(out / "tiles.geojson", probabilities, flags, plan.grid, threshold, spread)
    summary = summary_of(plan, probabilities, flags, threshold, time.monotonic() - started, model_path)
    if spread is not None:
        summary.update(uncertainty=True, uncertain_spread=UNCERTAIN_SPREAD,
                       n_uncertain_tumour=n_uncertain_tumour(probabilities, spread, threshold))  # fmt: skip
    summary["thumbnail_scale"] = plan.thumb_scale * factor  # of thumbnail.png, which the page draws on
    atomic_write_json(out / "summary.json", summary)
    return summary


def read_outputs(out_dir) -> dict | None:
    """{summary, probabilities, quality, spread} of a complete output folder, or None; spread is the
    uncertainty layer when the run kept it, else None."""
    out = Path(out_dir)
    try:
        summary = json.loads((out / "summary.json").read_text())
        if not isinstance(summary, dict) or summary.get("quality_format", 1) != QUALITY_FORMAT:
            return None  # its flag bits may mean other flags: computed again
        return {
            "summary": summary,
            "probabilities": np.load(out / "probabilities.npy"),
            "quality": np.load(out / "quality.npy"),
            "spread": np.load(out / SPREAD_FILE) if summary.get("uncertainty") is True else None,
        }
    except (OSError, ValueError):
        return None
