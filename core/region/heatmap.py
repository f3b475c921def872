"""The streamed heatmap run: open the image, mask the tissue, score every tissue tile in batches,
write the outputs.

`prepare` opens the image, settles its resolution (the file's, or the `mpp` given), lays the tile
grid, picks the level to read and masks the tissue on a thumbnail. `score` runs the model over the
tissue tiles through the one scoring loop (core.evaluate.score): its reader thread reads one band of
tiles at a time (at most `batch_size` tiles wide) and runs the input-quality gate on them while the
model scores the previous batch; at most PREFETCH_BATCHES batches of pixels wait at once, so memory
stays flat whatever the slide's size. `score` only places each batch's results on the grid.
`run_heatmap` does both and writes the outputs (core.region.outputs). Progress reports tiles done,
tiles/s and the ETA; `should_stop` ends the run at the next batch (HeatmapStopped, the loop's ScoringStopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import PCAM_MPP, SCORING_BATCH_SIZE
from core.data.quality import OUT_OF_DISTRIBUTION
from core.errors import ScoringStopped
from core.evaluate.score import Batch, ScoredBatch, score_batches
from core.region.outputs import FLAG_BITS, write_outputs
from core.region.reader import PLAUSIBLE_MPP, RegionImage, RegionImageError, open_region_image, plausible_mpp
from core.region.tiling import DEFAULT_STRIDE, Grid, check_stride, cut_tiles, read_band, read_level
from core.region.tissue import thumbnail, thumbnail_scale, tile_tissue_fractions, tissue_mask, tissue_tiles

DEFAULT_BATCH_SIZE = SCORING_BATCH_SIZE

Progress = Callable[[dict], None]


HeatmapStopped = ScoringStopped  # the one stop error of the scoring loop, by the name region's callers know


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


def _full_batches(plan: Plan, batch_size: int) -> Iterator[Batch]:
    """Batches of about `batch_size` tissue tiles (bands merged), `where` = their (rows, cols)."""
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    waiting = 0
    for rows, cols, pixels in _batches(plan, batch_size):
        pending.append((rows, cols, pixels))
        waiting += len(rows)
        if waiting >= batch_size:
            yield _merge(pending)
            pending, waiting = [], 0
    if waiting:
        yield _merge(pending)


def _merge(pending) -> Batch:
    rows = np.concatenate([p[0] for p in pending])
    cols = np.concatenate([p[1] for p in pending])
    return Batch((rows, cols), np.concatenate([p[2] for p in pending]))


def _flag_bits(batch: ScoredBatch) -> np.ndarray:
    """The quality flags of a scored batch as FLAG_BITS (0 for every tile without the gate)."""
    bits = np.zeros(len(batch.pixels), dtype=np.uint8)
    masks = dict(batch.report.masks) if batch.report is not None else {}
    if batch.out_of_distribution is not None:
        masks[OUT_OF_DISTRIBUTION] = batch.out_of_distribution
    for flag, mask in masks.items():
        bits |= np.where(mask, FLAG_BITS.get(flag, 0), 0).astype(np.uint8)
    return bits


def _rate_reporter(progress: Progress) -> Callable[[int, int], None]:
    """progress(done, total) of the scoring loop as this module's report: tiles done, tiles/s, ETA."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if not done:
            progress({"done": 0, "total": total, "patches_per_s": 0.0, "eta_s": None})
            return
        rate = done / max(time.monotonic() - started, 1e-9)
        progress({"done": done, "total": total, "patches_per_s": round(rate, 1),
                  "eta_s": round((total - done) / max(rate, 1e-9), 1)})  # fmt: skip

    return report


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
    probabilities, flags, _ = score_layers(
        model, plan, batch_size=batch_size, quality=quality, progress=progress, should_stop=should_stop
    )
    return probabilities, flags


def score_layers(
    model,
    plan: Plan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quality: bool = True,
    uncertainty: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`score`'s two layers and, with `uncertainty`, the spread of the 8 dihedral views (rows, cols)
    float32, NaN where not scored (core.evaluate.uncertainty); the probabilities are then the 8 views'
    mean. Without it the third layer is None."""
    from core.evaluate.predict import forward_pass

    probabilities = np.full(plan.grid.shape, np.nan, dtype=np.float32)
    flags = np.zeros(plan.grid.shape, dtype=np.uint8)
    spread = np.full(plan.grid.shape, np.nan, dtype=np.float32) if uncertainty else None
    scored = score_batches(
        model, _full_batches(plan, batch_size), forward=forward_pass(model, tta=uncertainty, ood=quality),
        total=int(plan.tissue.sum()), quality=quality, progress=_rate_reporter(progress) if progress else None,
        should_stop=should_stop, name="region-reader",
    )  # fmt: skip
    with closing(scored):
        for batch in scored:
            probabilities[batch.where] = batch.probs
            flags[batch.where] = _flag_bits(batch)
            if spread is not None:
                spread[batch.where] = batch.spread
    return probabilities, flags, spread


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
    uncertainty: bool = False,
    backend: str = "auto",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Score a region image or slide and write its outputs to `out_dir`; returns the summary. With
    `uncertainty` the tiles are scored with the 8 dihedral views and their spread is kept (spread.npy)."""
    from core.constants import DEFAULT_THRESHOLD

    started = time.monotonic()
    plan = prepare(image_path, model_resolution=model_mpp(model), stride=stride, mpp=mpp, backend=backend)
    with plan.image:
        if not plan.tissue.any():  # an all-glass (or all-black) image: no map to draw, say so
            raise RegionImageError(
                f"{plan.image.name}: the tissue mask found no tissue (only glass or background), so no tile "
                "could be scored."
            )
        probabilities, flags, spread = score_layers(
            model, plan, batch_size=batch_size, quality=quality, uncertainty=uncertainty, progress=progress,
            should_stop=should_stop,
        )  # fmt: skip
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    return write_outputs(
        out_dir, plan, probabilities, flags, threshold=threshold, started=started,
        model_path=getattr(model, "patchlens_path", None), spread=spread,
    )  # fmt: skip
