"""What a TIFF's pages say, for core.region.reader's TiffImage: the first page of each pyramid level,
whether every tile or strip lies inside the file, the resolution in µm/px (OME-XML, an Aperio
description or the resolution tags), and a decoded tile or strip as uint8 RGB. Also the rule every
reader applies to a resolution a file claims (`plausible_mpp`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from core.errors import RegionImageError

# A resolution outside this range (µm/px) is not a microscope's: e.g. the 72 dpi many tools write.
PLAUSIBLE_MPP = (0.05, 50.0)
WHITE = 255  # the colour of glass: what lies outside an image, and under its transparent pixels


def plausible_mpp(mpp: float | None) -> float | None:
    """`mpp` when it is a microscope's resolution, else None (e.g. 72 or 96 dpi screen defaults)."""
    if mpp is None or not math.isfinite(mpp):
        return None
    return float(mpp) if PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1] else None


def level_pages(tiff, name: str) -> list:
    """The first page of each pyramid level of the first series, largest first."""
    if not tiff.series:
        raise RegionImageError(f"{name}: the TIFF holds no image.")
    levels = tiff.series[0].levels
    pages = []
    for level in levels:
        page = level.keyframe if hasattr(level, "keyframe") else level.pages[0]
        axes = page.axes
        if not (axes.endswith("YXS") or axes.endswith("YX")) or (
            page.planarconfig == 2 and page.samplesperpixel > 1
        ):
            raise RegionImageError(f"{name}: unsupported TIFF layout (axes {axes}, separate colour planes).")
        pages.append(page)
    return pages


def check_complete(pages: list, path: Path) -> None:
    """A truncated file: some tile or strip lies past its end."""
    size = path.stat().st_size
    for page in pages:
        ends = np.asarray(page.dataoffsets, dtype=np.int64) + np.asarray(page.databytecounts, dtype=np.int64)
        if len(ends) and int(ends.max()) > size:
            raise RegionImageError(f"{path.name}: the file is truncated (image data past its end).")


def segment_rgb(segment: np.ndarray) -> np.ndarray:
    """A decoded tile/strip (h, w[, samples]) of any integer type -> uint8 RGB (h, w, 3)."""
    if segment.dtype == np.uint16:
        segment = (segment // 257).astype(np.uint8)
    elif segment.dtype != np.uint8:
        segment = np.clip(segment, 0, 255).astype(np.uint8)
    if segment.ndim == 2:
        segment = segment[..., None]
    if segment.shape[2] == 1:
        return np.repeat(segment, 3, axis=2)
    if segment.shape[2] == 4:  # RGBA: composite on white
        alpha = segment[..., 3:4].astype(np.float32) / 255.0
        return np.rint(segment[..., :3] * alpha + WHITE * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(segment[..., :3])


def tiff_mpp(tiff, page) -> float | None:
    """µm/px from OME-XML, an Aperio description, or the resolution tags (cm or inch)."""
    if tiff.is_ome and tiff.ome_metadata:
        found = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tiff.ome_metadata)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', tiff.ome_metadata)
        factor = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4}.get(unit.group(1) if unit else "µm")
        if found and factor:
            return plausible_mpp(float(found.group(1)) * factor)
    description = page.description or ""
    if "MPP" in description:
        found = re.search(r"MPP\s*=\s*([0-9.]+)", description)
        if found:
            return plausible_mpp(float(found.group(1)))
    tags = page.tags
    if "XResolution" in tags and "ResolutionUnit" in tags:
        numerator, denominator = tags["XResolution"].value
        unit = int(tags["ResolutionUnit"].value)
        per_unit = numerator / denominator if denominator else 0.0
        micrometres = {2: 25400.0, 3: 10000.0}.get(unit)
        if micrometres and per_unit > 0:
            return plausible_mpp(micrometres / per_unit)
    return None
