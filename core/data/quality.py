"""The input-quality gate: which patches the model should not be trusted on, and why.

Owns the image flags every scored patch gets (an empty set means `ok`):

- `background`: too little tissue — blank glass, fat, the slide's edge, an empty grey or black field.
  A 4x4 block holds no tissue when it is pale and colourless (HSV saturation of the block's mean
  colour < 0.07, PCam's own background criterion, and brighter than GLASS_MIN_VALUE), darker but
  still nearly grey (saturation < GREY_MAX_SATURATION: out-of-focus glass, the slide's edge), or
  too dark to pass light (brightest channel < DARK_MAX_LEVEL): stained tissue is coloured.
- `not_he`: colours or texture unlike H&E. Colour is judged in optical density (OD), where stains
  add linearly (core.data.stains): each tissue block's OD direction is split into its hue within the
  haematoxylin–eosin plane (0° = haematoxylin, ~39° = eosin) and its elevation out of that plane.
  DAB brown, yellow, red, green and blue lie outside the band real H&E occupies. IHC's DAB and
  bluish counterstain both project near haematoxylin, so a patch hue at the haematoxylin end is
  `not_he` only with DAB's signature: many blocks far out of the plane (DAB's elevation is 0.60).
  Real haematoxylin-heavy H&E (dense nuclei, lymphocytes, tumour) has the same low hue without it.
  Texture catches what colour cannot: a solid colour has no contrast, and iid noise has no
  correlation between neighbouring pixels (tissue imaged at 10x has a lot).
- `blurred`: out of focus — the Laplacian energy of the tissue relative to its contrast (grey-level
  variance) is far below what in-focus patches show. Judged only on patches with tissue.

- `out_of_distribution`: unlike the scoring model's own training data in its feature space. It is
  the model's verdict, not the image's: core.model.ood computes it in the forward pass that scores
  the patch, and `with_flag` adds it to these labels (IMAGE_FLAGS are the image's alone).

`background` patches are not judged for `not_he` or `blurred`: there is too little tissue for
either to mean anything. Flags are computed from named boolean masks (`QualityReport.masks`).

Thresholds are calibrated on the PCam-train JPEGs and the Kaggle TIFFs and checked on the held-out
PCam-valid slides (bench/calibrate_quality.py; BENCHMARKS.md, "Input-quality gate"). Everything is
vectorised numpy over a batch; no TensorFlow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from core.constants import FLAG_SEPARATOR, IMAGE_SIZE, PATCH_SHAPE
from core.data.stains import EOSIN, HAEMATOXYLIN, optical_density
from core.errors import PatchError

OUT_OF_DISTRIBUTION = "out_of_distribution"  # judged by the scoring model (core.model.ood)
OK = "ok"


@dataclass(frozen=True)
class QualityFlag:
    """One input-quality flag: its name, its STORED bit, its words, and what it does to a call.

    bit : its bit in every cached array of flags (a region's quality.npy); stored on disk, so never
        renumbered nor reused. A new flag takes the next free bit, and the artefacts carry
        QUALITY_FORMAT, so an old file is never read with another flag's meaning.
    meaning : what it says about a patch (the pages' help).
    badge : what it means for the probability shown beside it (Predict, Region).
    withholds : the pixels make a probability meaningless, so the call is withheld.
    by_image : judged on the pixels alone (`assess`); else by the scoring model.
    """

    name: str
    bit: int
    meaning: str
    badge: str
    withholds: bool = True
    by_image: bool = True


# A new flag: one entry here (the next free bit), plus the mask `assess` computes for it.
FLAGS = (
    QualityFlag(
        "background",
        bit=0,
        meaning="too little tissue (blank glass, fat, the slide's edge, an empty grey or dark field)",
        badge="mostly background — too little tissue to judge",
    ),
    QualityFlag(
        "not_he",
        bit=1,
        meaning="colours or texture unlike an H&E stain (another stain, a photo, noise, a solid colour)",
        badge="not an H&E patch — this probability is not meaningful",
    ),
    QualityFlag(
        "blurred",
        bit=2,
        meaning="out of focus: far less fine detail than real patches show",
        badge="out of focus — too little fine detail to judge",
    ),
    # The model's out_of_distribution verdict only warns: it fires on ~1 % of ordinary real patches by
    # design (the 99th percentile of held-out distances), and on those the model is mostly right.
    QualityFlag(
        OUT_OF_DISTRIBUTION,
        bit=3,
        meaning="unusual for this model: unlike its training data in its feature space, so the call "
        "is shown but less certain than usual",
        badge="unusual for this model — check this call",
        withholds=False,
        by_image=False,
    ),
)
QUALITY_FORMAT = 1  # stored with every cached array of flag bits; bump if a stored bit changes meaning
FLAG_BY_NAME = {flag.name: flag for flag in FLAGS}
QUALITY_FLAGS = tuple(FLAG_BY_NAME)
IMAGE_FLAGS = tuple(flag.name for flag in FLAGS if flag.by_image)  # judged on the pixels alone (`assess`)
WITHHOLDING_FLAGS = tuple(flag.name for flag in FLAGS if flag.withholds)  # the call is withheld
FLAG_BITS = {flag.name: 1 << flag.bit for flag in FLAGS}  # a cached array's value: OR of its flags' bits
FLAG_MEANINGS = {flag.name: flag.meaning for flag in FLAGS}
FLAG_BADGES = {flag.name: flag.badge for flag in FLAGS}  # beside a probability: what the flag means for it
NOT_MEANINGFUL = "— (not meaningful)"  # the call shown for a patch whose flags withhold it

# ----------------------------------------------------------------------------- thresholds
# Calibrated with bench/calibrate_quality.py on the calibration slides (18,838 PCam-train JPEGs +
# 3,329 Kaggle TIFFs) and on made-up and photographed non-H&E images, then measured on the held-out
# PCam-valid slides (2,907 JPEGs; BENCHMARKS.md, "Input-quality gate", 2026-12-06). "real q0.5"
# below = 0.5 % quantile over the real patches with tissue.

BLOCK = 4  # px: colour is judged on 4x4 block means (the blur of PCam's background criterion)
GLASS_MAX_SATURATION = 0.07  # PCam's background criterion: HSV saturation below it is colourless
GLASS_MIN_VALUE = 0.6  # ...and glass is bright; darker blocks are empty when nearly grey:
GREY_MAX_SATURATION = 0.20  # grey glass, the slide's edge (stained tissue this dark is saturated)
DARK_MAX_LEVEL = 50  # a block whose brightest channel is below this passes too little light to judge
BACKGROUND_MAX_TISSUE = 0.10  # < 10 % tissue blocks: `background` (524 real patches: glass, fat)
STAIN_MIN_OD = 0.15  # blocks fainter than this OD have too little stain for a reliable direction
HUE_BAND = (-12.0, 48.0)  # degrees: around the real tissue blocks, a block's hue must lie here...
ELEVATION_BAND = (-0.18, 0.50)  # ...and its elevation (sine of the angle out of the H–E plane) here
MAX_OFF_STAIN_FRACTION = 0.10  # more off-band blocks: `not_he` (real q99.9 0.017; IHC slide q50 0.55)
# The hue of the patch's summed stain must lie in the pink–purple band (degrees): real q0.5 3.7,
# q99.9 25.5; grey and black photos -4 to -8 (grey itself is -5.4).
PATCH_HUE_BAND = (0.0, 32.0)
# Below DAB_HUE_BELOW (real q0.5; haematoxylin-heavy tissue) the patch is `not_he` only when more than
# MAX_DAB_FRACTION of its stained blocks rise above DAB_MIN_ELEVATION out of the H–E plane: real
# patches with such a hue q99 0.075, max 0.44; real IHC slide crops at least 0.60.
DAB_HUE_BELOW = 4.0
DAB_MIN_ELEVATION = 0.45
MAX_DAB_FRACTION = 0.30
# Two stains spread the blocks' hues (degrees; real q0.5 1.46); one ink or dye does not (text q99 0.91).
MIN_HUE_SPREAD = 1.0
MIN_STAINED_BLOCKS = 16  # fewer stained blocks than this are too few to measure a spread
MIN_CONTRAST = 4.0  # grey-level std below which a patch is a solid colour (real q0.1 10.5)
MIN_NEIGHBOUR_CORRELATION = 0.08  # independent pixels: noise (real q0.1 0.23; noise max 0.02)
# Laplacian energy / grey variance over the tissue: real q0.5 0.88, real blurred sigma 2 at most 0.16.
MIN_SHARPNESS = 0.25

# The H–E plane: haematoxylin, the part of eosin orthogonal to it, and the plane's normal.
_EOSIN_IN_PLANE = EOSIN - (EOSIN @ HAEMATOXYLIN) * HAEMATOXYLIN
_EOSIN_IN_PLANE /= np.linalg.norm(_EOSIN_IN_PLANE)
_PLANE_NORMAL = np.cross(HAEMATOXYLIN, EOSIN)
_PLANE_NORMAL /= np.linalg.norm(_PLANE_NORMAL)
_STAIN_FRAME = np.stack([HAEMATOXYLIN, _EOSIN_IN_PLANE, _PLANE_NORMAL], axis=1).astype(np.float32)
PIXELS = IMAGE_SIZE * IMAGE_SIZE


@dataclass(frozen=True)
class QualityReport:
    """Per-patch measurements (arrays of shape (n,)) and the flags they raise.

    tissue_fraction : share of 4x4 blocks that are not blank glass.
    off_stain_fraction : share of stained tissue blocks whose OD lies outside the H&E band.
    dab_fraction : share of stained tissue blocks above DAB_MIN_ELEVATION out of the H–E plane.
    stain_hue : hue (degrees) of the patch's summed tissue OD in the H–E plane; NaN without stain.
    stain_hue_spread : standard deviation (degrees) of the stained blocks' hues; NaN with fewer
        than MIN_STAINED_BLOCKS of them.
    contrast : standard deviation of the grey levels (0-255).
    neighbour_correlation : correlation of each pixel's grey level with its right/lower neighbour.
    sharpness : mean squared Laplacian of the grey levels over the tissue / their variance there.
    masks : {flag: (n,) bool}, in IMAGE_FLAGS order.
    """

    tissue_fraction: np.ndarray
    off_stain_fraction: np.ndarray
    dab_fraction: np.ndarray
    stain_hue: np.ndarray
    stain_hue_spread: np.ndarray
    contrast: np.ndarray
    neighbour_correlation: np.ndarray
    sharpness: np.ndarray
    masks: Mapping[str, np.ndarray] = field(repr=False)

    def __len__(self) -> int:
        return len(self.tissue_fraction)

    @property
    def flags(self) -> list[tuple[str, ...]]:
        """The flags of each patch, as tuples in the order of `masks` (empty = ok)."""
        names = list(self.masks)
        if not names:
            return [()] * len(self)
        table = np.stack([np.asarray(self.masks[name], dtype=bool) for name in names], axis=1)
        return [tuple(name for name, raised in zip(names, row) if raised) for row in table]

    @property
    def labels(self) -> list[str]:
        """`quality_label` of each patch: 'ok' or the flags joined by ';'."""
        return [quality_label(flags) for flags in self.flags]

    def measurements(self) -> dict[str, np.ndarray]:
        """The measurement arrays by name (for tables and calibration)."""
        return {
            "tissue_fraction": self.tissue_fraction,
            "off_stain_fraction": self.off_stain_fraction,
            "dab_fraction": self.dab_fraction,
            "stain_hue": self.stain_hue,
            "stain_hue_spread": self.stain_hue_spread,
            "contrast": self.contrast,
            "neighbour_correlation": self.neighbour_correlation,
            "sharpness": self.sharpness,
        }


def quality_label(flags: Iterable[str]) -> str:
    """'ok' for no flag, else the flags joined by ';' (e.g. 'not_he;blurred')."""
    flags = tuple(flags)
    return FLAG_SEPARATOR.join(flags) if flags else OK


def withholds(label: str) -> bool:
    """Whether a quality label ('ok' or flags joined by ';') withholds the call (WITHHOLDING_FLAGS)."""
    return any(flag in WITHHOLDING_FLAGS for flag in label.split(FLAG_SEPARATOR))


def count_flags(labels: Iterable[str], flags: Iterable[str] = IMAGE_FLAGS) -> dict[str, int]:
    """{flag: patches with it} for 'ok' and every flag in `flags` (the image flags by default: a
    dataset has no model), then any other flag found, from quality labels.

    A patch with two flags counts once for each.
    """
    counts: Counter[str] = Counter()
    for label in labels:
        counts.update(label.split(FLAG_SEPARATOR))
    ordered = {name: counts.pop(name, 0) for name in (OK, *flags)}
    return {**ordered, **dict(sorted(counts.items()))}


def assess(patches: np.ndarray) -> QualityReport:
    """Measure and flag a batch (n, 96, 96, 3) or one patch (96, 96, 3) of uint8 RGB pixels.

    Raises PatchError when the array is not uint8 RGB 96x96 patches.
    """
    x = _validated(patches)
    blocks = _block_sums(x, np.uint16)
    tissue = ~_is_glass(blocks)
    tissue_fraction = tissue.mean(axis=(1, 2), dtype=np.float64)
    off_stain, dab, hue, hue_spread = _stain_measures(blocks, tissue)
    grey = _grey_levels(x)
    centred = grey - grey.mean(axis=(1, 2), keepdims=True)
    contrast = np.sqrt(np.einsum("nij,nij->n", centred, centred, dtype=np.float64) / PIXELS)
    correlation = _neighbour_correlation(centred, contrast**2)
    sharpness = _sharpness(grey, centred, tissue)

    background = tissue_fraction < BACKGROUND_MAX_TISSUE
    judged = ~background
    flat = contrast < MIN_CONTRAST  # a solid colour: no texture, and no focus to judge
    with np.errstate(invalid="ignore"):  # NaN (too few stained blocks to tell) raises nothing
        one_dye = hue_spread < MIN_HUE_SPREAD
        hue_outside = (hue < PATCH_HUE_BAND[0]) | (hue > PATCH_HUE_BAND[1])
        hue_outside |= (hue < DAB_HUE_BELOW) & (dab > MAX_DAB_FRACTION)  # IHC: DAB beside haematoxylin
    colour = (off_stain > MAX_OFF_STAIN_FRACTION) | hue_outside | one_dye
    texture = flat | (correlation < MIN_NEIGHBOUR_CORRELATION)
    not_he = judged & (colour | texture)
    blurred = judged & ~flat & (sharpness < MIN_SHARPNESS)
    return QualityReport(
        tissue_fraction=tissue_fraction,
        off_stain_fraction=off_stain,
        dab_fraction=dab,
        stain_hue=hue,
        stain_hue_spread=hue_spread,
        contrast=contrast,
        neighbour_correlation=correlation,
        sharpness=sharpness,
        masks={"background": background, "not_he": not_he, "blurred": blurred},
    )


def quality_labels(patches: np.ndarray) -> list[str]:
    """`assess(patches).labels`: 'ok' or the flags joined by ';', one per patch."""
    return assess(patches).labels


def with_flag(labels: Iterable[str], flag: str, raised) -> list[str]:
    """The quality labels with `flag` added where `raised` (a bool per label) is true; flags are
    added in QUALITY_FLAGS order, so `flag` must come after every flag already in the labels."""
    return [
        (flag if label == OK else f"{label}{FLAG_SEPARATOR}{flag}") if bool(up) else label
        for label, up in zip(labels, raised, strict=True)
    ]


# ----------------------------------------------------------------------------- measurements


def _validated(patches) -> np.ndarray:
    x = np.asarray(patches)
    if x.shape == PATCH_SHAPE:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != PATCH_SHAPE:
        raise PatchError(f"quality needs patches of shape (96, 96, 3) or (n, 96, 96, 3); got {x.shape}.")
    if x.dtype != np.uint8:
        raise PatchError(f"quality needs uint8 pixels (0-255); got dtype {x.dtype}.")
    return x


def _block_sums(values: np.ndarray, dtype=None) -> np.ndarray:
    """Sum of each 4x4 block over axes 1 and 2, (n, 96, 96, ...) -> (n, 24, 24, ...), in `dtype` (default:
    the values' own; uint16 for uint8 pixels: 0-4080, 16 x the block's mean colour)."""
    rows = values[:, 0::BLOCK].astype(dtype or values.dtype)  # a copy, summed into in place
    for k in range(1, BLOCK):
        rows += values[:, k::BLOCK]
    blocks = rows[:, :, 0::BLOCK].copy()
    for k in range(1, BLOCK):
        blocks += rows[:, :, k::BLOCK]
    return blocks


def _is_glass(blocks: np.ndarray) -> np.ndarray:
    """(n, 24, 24) bool: blocks without tissue: colourless (PCam's saturation criterion) and bright,
    nearly grey and darker, or too dark to pass light."""
    red, green, blue = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    brightest = np.maximum(np.maximum(red, green), blue)
    chroma = brightest - np.minimum(np.minimum(red, green), blue)
    bright = brightest >= GLASS_MIN_VALUE * 255.0 * BLOCK * BLOCK
    glass = bright & (chroma < GLASS_MAX_SATURATION * brightest)
    grey = ~bright & (chroma < GREY_MAX_SATURATION * brightest)
    return glass | grey | (brightest < DARK_MAX_LEVEL * BLOCK * BLOCK)


# Optical density of each possible block sum s (mean level s / 16), looked up rather than computed.
_OD_OF_BLOCK_SUM = optical_density(np.arange(255 * BLOCK * BLOCK + 1, dtype=np.float32) / (BLOCK * BLOCK))


def _stain_measures(
    blocks: np.ndarray, tissue: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(share of stained tissue blocks outside the H&E band, share of them DAB-like (far out of the
    H–E plane), hue of the patch's summed stain, standard deviation of the stained blocks' hues)."""
    od = _OD_OF_BLOCK_SUM[blocks]
    frame = od @ _STAIN_FRAME  # (n, 24, 24, 3): along H, along E's in-plane part, out of plane
    length = np.sqrt(np.einsum("...c,...c->...", od, od))
    stained = tissue & (length >= STAIN_MIN_OD)
    with np.errstate(invalid="ignore", divide="ignore"):
        hue = np.degrees(np.arctan2(frame[..., 1], frame[..., 0]))
        elevation = frame[..., 2] / length
    outside = (hue < HUE_BAND[0]) | (hue > HUE_BAND[1])
    outside |= (elevation < ELEVATION_BAND[0]) | (elevation > ELEVATION_BAND[1])
    weight = stained.astype(np.float32)
    n_stained = weight.sum(axis=(1, 2), dtype=np.float64)
    off_fraction = (outside & stained).sum(axis=(1, 2)) / np.maximum(n_stained, 1.0)
    dab_like = (elevation > DAB_MIN_ELEVATION) & stained
    dab_fraction = dab_like.sum(axis=(1, 2)) / np.maximum(n_stained, 1.0)
    total = np.einsum("nijc,nij->nc", frame, weight, dtype=np.float64)
    patch_hue = np.degrees(np.arctan2(total[:, 1], total[:, 0]))
    patch_hue[n_stained == 0] = np.nan
    hue = np.where(stained, hue, 0.0)
    mean_hue = np.einsum("nij,nij->n", hue, weight, dtype=np.float64) / np.maximum(n_stained, 1.0)
    centred = hue - mean_hue[:, None, None].astype(np.float32)
    spread = np.sqrt(
        np.einsum("nij,nij,nij->n", centred, centred, weight, dtype=np.float64) / np.maximum(n_stained, 1.0)
    )
    spread[n_stained < MIN_STAINED_BLOCKS] = np.nan
    return off_fraction, dab_fraction, patch_hue, spread


def _grey_levels(x: np.ndarray) -> np.ndarray:
    """(n, 96, 96) float32 luma (ITU-R BT.601 weights in 1/256 steps), 0-255."""
    grey = x[..., 0] * np.uint16(77)
    grey += x[..., 1] * np.uint16(150)
    grey += x[..., 2] * np.uint16(29)
    return grey.astype(np.float32) * np.float32(1 / 256)


def _neighbour_correlation(centred: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Mean of the lag-1 horizontal and vertical autocorrelations; 1 for a flat patch."""
    pixels = PIXELS
    across = np.einsum("nij,nij->n", centred[:, :, 1:], centred[:, :, :-1], dtype=np.float64)
    down = np.einsum("nij,nij->n", centred[:, 1:, :], centred[:, :-1, :], dtype=np.float64)
    flat = variance <= 1e-9
    return np.where(flat, 1.0, (across + down) / (2.0 * pixels * np.where(flat, 1.0, variance)))


def _sharpness(grey: np.ndarray, centred: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """Mean squared 4-neighbour Laplacian over tissue blocks / grey variance over them."""
    laplacian = np.zeros_like(grey)
    inner = laplacian[:, 1:-1, 1:-1]
    np.add(grey[:, :-2, 1:-1], grey[:, 2:, 1:-1], out=inner)
    inner += grey[:, 1:-1, :-2]
    inner += grey[:, 1:-1, 2:]
    inner -= 4.0 * grey[:, 1:-1, 1:-1]
    weight = tissue.astype(np.float32)
    pixels = np.maximum(weight.sum(axis=(1, 2), dtype=np.float64) * BLOCK * BLOCK, 1.0)

    def over_tissue(values: np.ndarray) -> np.ndarray:
        return np.einsum("nij,nij->n", _block_sums(values), weight, dtype=np.float64) / pixels

    energy = over_tissue(np.square(laplacian, out=laplacian))
    mean = over_tissue(centred)
    variance = over_tissue(np.square(centred)) - mean**2
    return energy / np.maximum(variance, 1.0)
