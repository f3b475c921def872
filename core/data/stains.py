"""The stain physics every module shares: Ruifrok–Johnston stain vectors and optical density.

H&E slides are stained with haematoxylin (purple-blue, nuclei) and eosin (pink, cytoplasm and
stroma); immunohistochemistry (IHC) adds DAB (brown). In optical density (OD = -log of the
transmitted fraction of light) stains add linearly, so each pixel's OD is a non-negative mix of
the stain vectors below (Ruifrok & Johnston 2001, the values skimage.color.rgb2hed uses). Used by
training-time HED jitter (core.model.augment) and the input-quality gate (core.data.quality).
"""

from __future__ import annotations

import numpy as np

# Rows: haematoxylin, eosin, and a third vector orthogonal to both (skimage's "DAB" row of
# rgb2hed), each of unit length. Columns: R, G, B optical density.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32)
RGB_FROM_HED[2] = np.cross(RGB_FROM_HED[0], RGB_FROM_HED[1])
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)

HAEMATOXYLIN = RGB_FROM_HED[0]
EOSIN = RGB_FROM_HED[1]
# The measured DAB vector itself (not the orthogonal third row above): the brown of IHC stains.
DAB = np.array([0.27, 0.57, 0.78], dtype=np.float32) / np.linalg.norm([0.27, 0.57, 0.78]).astype(np.float32)

# Optical density of each 8-bit level, -log((I + 1) / 256): 0 for white (255), ~5.5 for black.
OD_OF_LEVEL = -np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0).astype(np.float32)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """-log((I + 1) / 256) of 0-255 values (uint8 via a lookup table, anything else computed)."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return OD_OF_LEVEL[rgb]
    return -np.log((rgb.astype(np.float32) + 1.0) / 256.0)
