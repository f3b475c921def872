"""Made-up images that are not H&E patches, for the quality-gate tests and its calibration.

One home for the generators that tests/test_quality.py and bench/calibrate_quality.py share. Each
takes a numpy Generator and returns uint8 (n, 96, 96, 3); the ones built from real patches take
those patches. The photographs and the real IHC crops are files in tests/data/non_he/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from core.constants import IMAGE_SIZE
from core.data.stains import DAB, HAEMATOXYLIN, HED_FROM_RGB, RGB_FROM_HED, optical_density

NON_HE_DIR = Path(__file__).resolve().parent / "data" / "non_he"
SIZE = IMAGE_SIZE
WORDS = "lymph node tumour patch slide report sample stain the quick brown fox jumps over 0123456789".split()


def solid_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """One uniformly random RGB colour per image."""
    colours = rng.integers(0, 256, (n, 1, 1, 3), dtype=np.uint8)
    return np.broadcast_to(colours, (n, SIZE, SIZE, 3)).copy()


def gradients(rng: np.random.Generator, n: int) -> np.ndarray:
    """Linear ramps between two random colours in a random direction."""
    t = np.linspace(0.0, 1.0, SIZE)
    rows, cols = np.meshgrid(t, t, indexing="ij")
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for k in range(n):
        start, end = rng.integers(0, 256, (2, 3))
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = np.cos(angle) * cols + np.sin(angle) * rows
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        out[k] = np.round(start + (end - start) * ramp[..., None])
    return out


def uniform_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Every channel of every pixel uniform in 0-255."""
    return rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def gaussian_noise(rng: np.random.Generator, n: int, real: np.ndarray) -> np.ndarray:
    """iid Gaussian noise (sigma 10-60) around the mean colour of a random real patch: H&E colours,
    no image."""
    means = real.reshape(len(real), -1, 3).mean(axis=1)[rng.integers(0, len(real), n)]
    sigma = rng.uniform(10.0, 60.0, (n, 1, 1, 1))
    noise = means[:, None, None, :] + sigma * rng.standard_normal((n, SIZE, SIZE, 3))
    return np.clip(np.round(noise), 0, 255).astype(np.uint8)


def text_on_white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lines of words in black or a random colour, 9-21 px type, on white."""
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for k in range(n):
        image = Image.new("RGB", (SIZE, SIZE), "white")
        draw = ImageDraw.Draw(image)
        size = int(rng.integers(9, 22))
        font = ImageFont.load_default(size=size)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) if rng.random() < 0.5 else (0, 0, 0)
        y = int(rng.integers(0, 6))
        while y < SIZE:
            draw.text((int(rng.integers(-4, 8)), y), " ".join(rng.choice(WORDS, 4)), fill=colour, font=font)
            y += size + 2
        out[k] = np.asarray(image)
    return out


def blurred(patches: np.ndarray, sigma: float) -> np.ndarray:
    """Each patch through a Gaussian blur of `sigma` px (edges reflected): out of focus."""
    smooth = ndimage.gaussian_filter(patches.astype(np.float32), (0, sigma, sigma, 0), mode="reflect")
    return np.clip(np.round(smooth), 0, 255).astype(np.uint8)


def ihc_recoloured(patches: np.ndarray) -> np.ndarray:
    """Real H&E patches re-rendered as IHC: colour deconvolution (Ruifrok–Johnston), then the eosin
    amount drawn in DAB brown while haematoxylin and the residual stay."""
    amounts = optical_density(patches) @ HED_FROM_RGB  # (..., 3): haematoxylin, eosin, residual
    od = (
        amounts[..., :1] * HAEMATOXYLIN
        + np.maximum(amounts[..., 1:2], 0.0) * DAB
        + amounts[..., 2:] * RGB_FROM_HED[2]
    )
    return np.clip(np.round(256.0 * np.exp(-od) - 1.0), 0, 255).astype(np.uint8)


def random_crops(image: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n random SIZE x SIZE crops of an (H, W, 3) image."""
    height, width = image.shape[:2]
    rows = rng.integers(0, height - SIZE + 1, n)
    cols = rng.integers(0, width - SIZE + 1, n)
    return np.stack([image[r : r + SIZE, c : c + SIZE] for r, c in zip(rows, cols)])


def shipped_non_he() -> dict[str, np.ndarray]:
    """The crops in tests/data/non_he/ by file name: photographs and a real IHC slide."""
    return {
        path.name: np.asarray(Image.open(path).convert("RGB")) for path in sorted(NON_HE_DIR.glob("*.png"))
    }
