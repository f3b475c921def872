"""The streamed heatmap run: open the image, mask the tissue, score every tissue tile in batches,
write the outputs.

`prepare` opens the image, settles its resolution (the file's, or the `mpp` given), lays the tile
grid, picks the level to read and masks the tissue on a thumbnail. `score` runs the model over the
tissue tiles: a reader thread reads one band of tiles at a time (at most `batch_size` tiles wide)
and runs the input-quality gate on them while the model scores the previous batch (core.data.stream);
at most PREFETCH_BATCHES batches of pixels wait at once, so memory stays flat whatever the slide's size.
`run_heatmap` does both and writes the outputs (core.region.outputs). Progress reports tiles done,
tiles/s and the ETA; `should_stop` ends the run at the next batch (HeatmapStopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import PCAM_MPP, SCORING_BATCH_SIZE
from core.data.quality import OUT_OF_DISTRIBUTION, assess
from core.data.stream import read_ahead
from core.errors import PatchLensError
from core.region.outputs import FLAG_BITS, write_outputs
from core.region.reader import PLAUSIBLE_MPP, RegionImage, RegionImageError, open_region_image, plausible_mpp
from core.region.tiling import DEFAULT_STRIDE, Grid, check_stride, cut_tiles, read_band, read_level
from core.region.tissue import thumbnail, thumbnail_scale, tile_tissue_fractions, tissue_mask, tissue_tiles

DEFAULT_BATCH_SIZE = SCORING_BATCH_SIZE

Progress = Callable[[dict], None]


class HeatmapStopped(PatchLensError):
    """The heatmap run was asked to stop."""


@dataclass
class Plan:
    """Everything decided before the model runs."""

    image: RegionImage
    grid: Grid
    level: int
    mpp_source: str  # "file" or "given"
    thumb: np.ndarray
    thumb_scale: float  # thumbnail px per level-0 px
    tissue: np.ndarray  # (rows, cols) bool: tiles to score
    saturation_threshold: float


def model_mpp(model) -> float:
    """The model's resolution in µm/px, from its metadata (PCam's 0.972 when it has none)."""
    meta = getattr(model, "patchlens_meta", None) or {}
    try:
        value = float(meta.get("mpp", PCAM_MPP))
    except (TypeError, ValueError):
        value = PCAM_MPP
    return value if value > 0 else PCAM_MPP


def open_checked(
    image_path: str | Path,
    *,
    model_resolution: float = PCAM_MPP,
    stride: int = DEFAULT_STRIDE,
    mpp: float | None = None,
    backend: str = "auto",
) -> tuple[RegionImage, Grid]:
    """Open the image and lay its grid (cheap: no pixel is read beyond a header and one tile);
    RegionImageError when it cannot be scored. The caller closes the image."""
    check_stride(stride)
    if mpp is not None and plausible_mpp(mpp) is None:  # inf, nan, 0, or no microscope's
        low, high = PLAUSIBLE_MPP
        raise RegionImageError(
            f"--mpp must be a resolution between {low} and {high} µm per pixel; got {mpp}."
        )
    image = open_region_image(image_path, backend)
    resolution = mpp if mpp is not None else image.mpp
    grid = (
        None
        if resolution is None
        else Grid(image.width, image.height, float(resolution), model_resolution, stride)
    )
    if grid is None or grid.shape == (0, 0):
        image.close()
        if grid is None:
            raise RegionImageError(
                f"{image.name} does not say how many µm a pixel is; pass its resolution (e.g. --mpp 0.25)."
            )
        w, h = grid.model_size
        raise RegionImageError(
            f"{image.name} is {w}x{h} px at the model's resolution ({model_resolution} µm/px): "
            "smaller than one 96x96 patch."
        )
    return image, grid


def prepare(
    image_path: str | Path,
    *,
    model_resolution: float = PCAM_MPP,
    stride: int = DEFAULT_STRIDE,
    mpp: float | None = None,
    backend: str = "auto",
) -> Plan:
    """Open the image and plan the run (grid, level, thumbnail, tissue mask); RegionImageError when
    it cannot be scored."""
    image, grid = open_checked(
        image_path, model_resolution=model_resolution, stride=stride, mpp=mpp, backend=backend
    )
    try:
        thumb = thumbnail(image)
        scale = thumbnail_scale(image)
        mask, saturation_threshold = tissue_mask(thumb)
        tissue = tissue_tiles(tile_tissue_fractions(mask, grid, scale))
        source = "given" if mpp is not None else "file"
        return Plan(image, grid, read_level(image, grid), source, thumb, scale, tissue, saturation_threshold)
    except BaseException:
        image.close()
        raise


def _batches(plan: Plan, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, cols, pixels) of tissue tiles, a band of at most `batch_size` tiles at a time."""
    for row in np.flatnonzero(plan.tissue.any(axis=1)):
        cols = np.flatnonzero(plan.tissue[row])
        for start in range(0, len(cols), batch_size):
            chunk = cols[start : start + batch_size]
            band = read_band(plan.image, plan.grid, plan.level, int(row), int(chunk[0]), int(chunk[-1]) + 1)
            yield np.full(len(chunk), row), chunk, cut_tiles(band, plan.grid, int(chunk[0]), chunk)


def _flag_bits(pixels: np.ndarray) -> np.ndarray:
    masks = assess(pixels).masks
    bits = np.zeros(len(pixels), dtype=np.uint8)
    for flag, mask in masks.items():
        bits |= np.where(mask, FLAG_BITS.get(flag, 0), 0).astype(np.uint8)
    return bits


def _full_batches(plan: Plan, batch_size: int, quality: bool) -> Iterator[tuple]:
    """(rows, cols, pixels, flag bits) per batch of about `batch_size` tiles (bands merged)."""
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    waiting = 0
    for rows, cols, pixels in _batches(plan, batch_size):
        pending.append((rows, cols, pixels))
        waiting += len(rows)
        if waiting >= batch_size:
            yield _merge(pending, quality)
            pending, waiting = [], 0
    if waiting:
        yield _merge(pending, quality)


def _merge(pending, quality: bool):
    rows = np.concatenate([p[0] for p in pending])
    cols = np.concatenate([p[1] for p in pending])
    pixels = np.concatenate([p[2] for p in pending])
    bits = _flag_bits(pixels) if quality else np.zeros(len(pixels), dtype=np.uint8)
    return rows, cols, pixels, bits


def _stop_if_asked(should_stop: Callable[[], bool] | None) -> None:
    if should_stop and should_stop():
        raise HeatmapStopped("stopped on request")


def score(
    model,
    plan: Plan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (rows, cols) float32, NaN where not scored; quality bits (rows, cols) uint8)."""
    from core.data.normalise import normaliser_of
    from core.evaluate.predict import compiled_predict
    from core.model.ood import batch_scorer

    forward = compiled_predict(model)
    scorer = batch_scorer(model) if quality else None  # None: the model has no out-of-distribution statistics
    normaliser = normaliser_of(model)
    probabilities = np.full(plan.grid.shape, np.nan, dtype=np.float32)
    flags = np.zeros(plan.grid.shape, dtype=np.uint8)
    total, done, started = int(plan.tissue.sum()), 0, time.monotonic()
    if progress:
        progress({"done": 0, "total": total, "patches_per_s": 0.0, "eta_s": None})
    batches = read_ahead(_full_batches(plan, batch_size, quality), name="region-reader", join_timeout=10)
    with closing(batches):
        _stop_if_asked(should_stop)
        for rows, cols, pixels, bits in batches:
            pixels = normaliser.transform(pixels).astype(np.float32)  # as the model was trained
            if scorer is None:
                probabilities[rows, cols] = forward(pixels).numpy()
            else:  # one forward pass: the probabilities and the out-of-distribution verdict
                probabilities[rows, cols], unlike_training = scorer(pixels)
                bits = bits | np.where(unlike_training, FLAG_BITS[OUT_OF_DISTRIBUTION], 0).astype(np.uint8)
            flags[rows, cols] = bits
            done += len(rows)
            if progress:
                rate = done / max(time.monotonic() - started, 1e-9)
                progress({"done": done, "total": total, "patches_per_s": round(rate, 1),
                          "eta_s": round((total - done) / max(rate, 1e-9), 1)})  # fmt: skip
            _stop_if_asked(should_stop)
    return probabilities, flags


def run_heatmap(
    model,
    image_path: str | Path,
    out_dir: str | Path,
    *,
    stride: int = DEFAULT_STRIDE,
    mpp: float | None = None,
    threshold: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: bool = True,
    backend: str = "auto",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Score a region image or slide and write its outputs to `out_dir`; returns the summary."""
    from core.constants import DEFAULT_THRESHOLD

    started = time.monotonic()
    plan = prepare(image_path, model_resolution=model_mpp(model), stride=stride, mpp=mpp, backend=backend)
    with plan.image:
        if not plan.tissue.any():  # an all-glass (or all-black) image: no map to draw, say so
            raise RegionImageError(
                f"{plan.image.name}: the tissue mask found no tissue (only glass or background), so no tile "
                "could be scored."
            )
        probabilities, flags = score(
            model, plan, batch_size=batch_size, quality=quality, progress=progress, should_stop=should_stop
        )
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    return write_outputs(
        out_dir, plan, probabilities, flags, threshold=threshold, started=started,
        model_path=getattr(model, "patchlens_path", None),
    )  # fmt: skip
