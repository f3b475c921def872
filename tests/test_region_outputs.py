"""The region run's picture files (issue 19 item 11): thumbnail.png is a sensible size for what it is
(the page's map: at most 1,024 px, well under 1 MB) and the overlay's colour-bar labels grow with the
overlay, so they can be read when the whole image is on a screen."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.data.images import decode_patch
from core.region.outputs import THUMBNAIL_FILE_SIDE, overlay_image, thumbnail_file
from core.settings import SAMPLE_DATASET

ROWS, COLS = 16, 21  # real patches: a 1,536 x 2,016 px thumbnail, as a large slide's would be


def real_thumbnail() -> np.ndarray:
    files = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[: ROWS * COLS]
    patches = np.stack([decode_patch(path) for path in files])
    return patches.reshape(ROWS, COLS, 96, 96, 3).transpose(0, 2, 1, 3, 4).reshape(ROWS * 96, COLS * 96, 3)


def test_thumbnail_png_is_at_most_1024_px_and_well_under_a_megabyte():
    thumb = real_thumbnail()
    data, factor = thumbnail_file(thumb)
    image = Image.open(io.BytesIO(data))
    assert max(image.size) == THUMBNAIL_FILE_SIDE and factor == image.width / thumb.shape[1]
    assert abs(image.height - thumb.shape[0] * factor) <= 1  # one scale for both axes (the page's)
    assert len(data) < 800_000  # 0.73 MB; a plain RGB PNG of this dense thumbnail is 8.0 MB
    shown = np.asarray(image.convert("RGB"), dtype=np.float32)
    expected = np.asarray(
        Image.fromarray(thumb).resize(image.size, Image.Resampling.LANCZOS), dtype=np.float32
    )
    assert np.abs(shown - expected).mean() < 4  # the palette keeps the tissue's colours


def test_a_small_thumbnail_keeps_its_size():
    thumb = real_thumbnail()[:480, :640]
    data, factor = thumbnail_file(thumb)
    assert factor == 1.0 and Image.open(io.BytesIO(data)).size == (640, 480)


def label_text_height(overlay: np.ndarray, picture_height: int) -> int:
    """Rows of the colour bar's label band that hold dark (text) pixels."""
    band = overlay[picture_height:]
    dark = (band.max(axis=2) < 100).any(axis=1)
    return int(dark.sum())


def test_overlay_bar_labels_grow_with_the_overlay():
    thumb = real_thumbnail()
    heat = np.full(thumb.shape[:2], np.nan, dtype=np.float32)
    heat[200:600, 300:900] = 0.8
    large = overlay_image(thumb, heat, 0.5)
    small = overlay_image(thumb[:300, :400], heat[:300, :400], 0.5)
    assert large.shape[1] == thumb.shape[1]
    assert label_text_height(large, thumb.shape[0]) >= 20  # 33 px labels at 2,016 px: ~16 px at half size
    assert 8 <= label_text_height(small, 300) < label_text_height(large, thumb.shape[0])
