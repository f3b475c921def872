"""Heatmaps for display: raw maps resized to the patch and scaled (shared reference or their own range),
colormaps as numpy lookup tables (no matplotlib), a map blended over its patch with the centre box, colour
bars, and the words that say how a map was scaled; `Explanation`, the maps of a batch with their scale.
The maps themselves come from core.evaluate.explain."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.constants import CENTRE_BOX, IMAGE_SIZE, PATCH_SHAPE
from core.errors import InputError, PatchError

SCALES = ("shared", "own")
DEFAULT_SCALE = "shared"
COLORMAPS = ("jet", "inferno", "viridis")
DEFAULT_COLORMAP = "jet"
DEFAULT_ALPHA = 0.4
# The shared scale draws this percentile of the map strengths of reference patches at the top colour.
REFERENCE_PERCENTILE = 95
# White, not the green of core.data.images: green is in the middle of jet and viridis, white in none.
BOX_COLOUR = (255, 255, 255)


# Colormaps as numpy lookup tables (no matplotlib). Jet: matplotlib's own piecewise-linear
# definition, (position, value) per channel. Inferno and viridis: the 10 evenly spaced anchor
# colours published with the maps (as in R's viridisLite), interpolated linearly.
_JET_SEGMENTS = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)
_ANCHORS = {
    "inferno": "000004 1B0C42 4B0C6B 781C6D A52C60 CF4446 ED6925 FB9A06 F7D03C FCFFA4",
    "viridis": "440154 482878 3E4A89 31688E 26828E 1F9E89 35B779 6DCD59 B4DE2C FDE725",
}


class Explanation(NamedTuple):
    """Heatmaps to draw, the raw maps behind them, and the P(tumour) the model gave each patch.

    heatmaps : float32 in [0, 1], 96x96 each: the raw maps on the display `scale`.
    probabilities : P(tumour) of each patch.
    raw : float32, 96x96 each: the method's map before any scaling (its own units, >= 0).
    strengths : the maximum of each raw map (on the conv grid, before upsampling).
    scale : "shared" or "own" (see the module docstring).
    references : on the shared scale, the raw value drawn at the top colour for each map (the
        reference of the score it explains); None on the "own" scale.
    score_references : on the shared scale, the reference of each score explained, e.g.
        {"tumour": 0.56}; empty on the "own" scale.

    Shapes follow the input: a batch (n, 96, 96, 3) gives heatmaps (n, 96, 96) and
    probabilities (n,); one patch (96, 96, 3) gives one heatmap (96, 96) and a 0-d probability.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    raw: np.ndarray
    strengths: np.ndarray
    scale: str = DEFAULT_SCALE
    references: np.ndarray | None = None
    score_references: dict[str, float] = {}  # noqa: RUF012 - never mutated, NamedTuple default

    def relative_strengths(self) -> np.ndarray | None:
        """Each map's strength as a fraction of its reference; None on the "own" scale."""
        if self.references is None:
            return None
        return np.asarray(self.strengths, dtype=np.float64) / self.references


def colormap_table(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """The 256-entry lookup table of a colormap: uint8 (256, 3), index 0 = heat 0."""
    if name not in COLORMAPS:
        raise InputError(f"Unknown colormap {name!r}; choose one of: {', '.join(COLORMAPS)}.")
    positions = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        channels = [np.interp(positions, *zip(*segment)) * 255.0 for segment in _JET_SEGMENTS]
    else:
        anchors = np.array(
            [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name].split()],
            dtype=float,
        )
        stops = np.linspace(0.0, 1.0, len(anchors))
        channels = [np.interp(positions, stops, anchors[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A heatmap in [0, 1] (H, W) as uint8 RGB colours (H, W, 3)."""
    heatmap = _check_heatmap(heatmap)
    indices = np.rint(heatmap * 255.0).astype(np.intp)
    return colormap_table(colormap)[indices]


def overlay(
    patch: np.ndarray,
    heatmap: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    draw_box: bool = True,
    box_colour: tuple[int, int, int] = BOX_COLOUR,
) -> np.ndarray:
    """The patch with its heatmap blended on top: uint8 (96, 96, 3).

    `alpha` is the heatmap's weight (0 = patch only, 1 = colours only). With `draw_box`, the
    outline of the labelled centre 32x32 px is drawn one pixel outside it, so no pixel that
    decides the label is hidden.
    """
    patch = np.asarray(patch)
    if patch.dtype != np.uint8 or patch.shape != PATCH_SHAPE:
        raise PatchError(f"Expected a uint8 patch of shape (96, 96, 3); got {patch.shape}, {patch.dtype}.")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must lie in [0, 1]; got {alpha}.")
    heatmap = _check_heatmap(heatmap)
    if heatmap.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise InputError(f"Expected a heatmap of shape (96, 96); got {heatmap.shape}.")
    colours = colorize(heatmap, colormap).astype(np.float32)
    blended = np.rint((1.0 - alpha) * patch.astype(np.float32) + alpha * colours)
    result = np.clip(blended, 0, 255).astype(np.uint8)
    if draw_box:
        left, top, right, bottom = CENTRE_BOX
        result[top - 1, left - 1 : right + 1] = box_colour
        result[bottom, left - 1 : right + 1] = box_colour
        result[top - 1 : bottom + 1, left - 1] = box_colour
        result[top - 1 : bottom + 1, right] = box_colour
    return result


def _check_heatmap(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise InputError(f"Expected one 2-D heatmap; got shape {heatmap.shape}.")
    return np.clip(np.nan_to_num(heatmap, nan=0.0), 0.0, 1.0)


# --- saying how maps are scaled -----------------------------------------------------------------

COLOUR_BAR_HEIGHT = 10  # px of colour in a colour bar; the labels go in a white band below it
LABEL_BAND_HEIGHT = 14


def colour_bar(colormap: str = DEFAULT_COLORMAP, *, width: int = 192, height: int = COLOUR_BAR_HEIGHT):
    """A horizontal strip of the colormap, heat 0 at the left, heat 1 at the right: uint8 (h, w, 3)."""
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return colorize(ramp, colormap)


def labelled_colour_bar(
    colormap: str, low_label: str, high_label: str, *, width: int = 192, text_px: int | None = None
) -> np.ndarray:
    """The colour bar with `low_label` under its left end and `high_label` under its right end; with
    `text_px`, in a scalable font that many pixels tall (for a large image seen whole, e.g. a region
    overlay), else in PIL's small bitmap font (a gallery's bar, drawn at about its own size)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=text_px) if text_px else None
    band_height = round(text_px * 1.5) if text_px else LABEL_BAND_HEIGHT
    band = Image.new("RGB", (width, band_height), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    margin = max(1, (text_px or 0) // 4)
    draw.text((margin, max(1, margin // 2)), low_label, fill=(0, 0, 0), font=font)
    right = draw.textlength(high_label, font=font)
    draw.text((max(width - right - margin, 0), max(1, margin // 2)), high_label, fill=(0, 0, 0), font=font)
    bar = colour_bar(colormap, width=width, height=max(COLOUR_BAR_HEIGHT, text_px or 0))
    return np.concatenate([bar, np.asarray(band)], axis=0)


# --- scaling raw maps for display ----------------------------------------------------------------


def resize_to_patch(maps: np.ndarray) -> np.ndarray:
    """Conv-grid maps (n, h, w) -> (n, 96, 96), bilinear.

    Each grid cell's value sits at the centre of the 96/h px it covers (scipy's grid_mode).
    tf-keras-vis's own expansion aligns the corners instead, which shifts the outer cells by
    half a cell (8 px on patchnet's 6x6 grid) and would misplace heat around the centre box.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
        return maps
    from scipy.ndimage import zoom

    factors = (1.0, IMAGE_SIZE / maps.shape[1], IMAGE_SIZE / maps.shape[2])
    return zoom(maps, factors, order=1, grid_mode=True, mode="nearest")


def on_shared_scale(maps: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Raw maps (n, h, w) divided by their reference strengths (n,) and clipped to [0, 1]."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    divisors = np.asarray(references, dtype=np.float32).reshape(-1, 1, 1)
    return np.clip(maps / divisors, 0.0, 1.0).astype(np.float32)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each map to [0, 1]; a constant (or non-finite) map becomes all zeros."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    flat = span <= 1e-12
    scaled = (maps - low) / np.where(flat, 1.0, span)
    return np.clip(np.where(flat, 0.0, scaled), 0.0, 1.0).astype(np.float32)


# --- words ---------------------------------------------------------------------------------------


def scale_labels(explanation: Explanation) -> tuple[str, str]:
    """What the two ends of the colour bar stand for."""
    if explanation.references is None:
        return "map's min", "map's max"
    references = np.unique(np.asarray(explanation.references))
    return "0", (f"{references[0]:.3g} or more" if len(references) == 1 else "reference or more")


def describe_scale(explanation: Explanation, method_name: str) -> str:
    """A sentence or two on how the heatmaps of `explanation` were scaled for display."""
    if explanation.references is None:
        return (
            f"Each {method_name} map is stretched to its own range (its weakest value at the left of "
            "the colour bar, its strongest at the right), so a faint map looks as hot as a strong "
            "one: compare the strengths, not the colours."
        )
    references = ", ".join(
        f"{score} score {value:.3g}" for score, value in explanation.score_references.items()
    )
    return (
        f"Shared scale: each {method_name} map is divided by a reference strength ({references}: the "
        f"{REFERENCE_PERCENTILE}th percentile of the map strengths of reference patches of the bundled "
        "sample, tumour and normal, for this model), so the right end of the colour bar is that "
        "reference or more, and a faint map stays faint. Strength = a map's raw maximum."
    )


def describe_strength(strength: float, reference: float | None) -> str:
    """A map's strength (its raw maximum), and its share of its reference when there is one."""
    if reference is None:
        return f"strength {float(strength):.3g}"
    return f"strength {float(strength):.3g} ({float(strength) / float(reference):.0%} of the reference)"
