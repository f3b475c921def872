"""What decoding a region image may cost in memory, checked from its header before a pixel is decoded.

A TIFF is decoded one strip or tile at a time, a PNG or JPEG whole. Either decode needs
width x height x samples x bytes-per-sample bytes at once (at least 3 bytes a pixel: the RGB copy the
reader keeps); a file whose one decode needs more than the decode budget (core.settings,
PATCHLENS_REGION_DECODE_MB) is refused with ImageTooLargeError. Without this, a 2.6 MB deflate TIFF of
30,000² px in one strip took 6 GB. A thumbnail read of an image with no coarser level must also fit.
"""

from __future__ import annotations

from core.errors import ImageTooLargeError
from core.settings import REGION_DECODE_ENV, region_decode_budget_bytes

RGB_BYTES = 3  # what the reader keeps of every decoded pixel


def decoded_bytes(width: int, height: int, samples: int, bytes_per_sample: int) -> int:
    """Bytes a decode of `width` x `height` px takes (never less than the RGB copy)."""
    return int(width) * int(height) * max(RGB_BYTES, int(samples) * int(bytes_per_sample))


def check_decode(name: str, what: str, nbytes: int) -> None:
    """ImageTooLargeError naming `what` (e.g. "its one strip of 30,000 x 30,000 px") when `nbytes`
    exceeds the decode budget."""
    budget = region_decode_budget_bytes()
    if nbytes > budget:
        raise ImageTooLargeError(
            f"{name}: {what} would take {_megabytes(nbytes)} of memory to decode, more than the "
            f"{_megabytes(budget)} a region image may take at once ({REGION_DECODE_ENV}). Save it as a "
            "tiled TIFF (e.g. 512 px tiles, with pyramid levels) or as a smaller image."
        )


def check_tiff_page(name: str, page, segment_shape: tuple[int, int]) -> None:
    """Refuse a TIFF level whose strips or tiles (`segment_shape` = (rows, columns)) exceed the budget."""
    rows, columns = segment_shape
    samples = int(page.samplesperpixel or 1)
    itemsize = max(1, int(page.bitspersample or 8) // 8)
    kind = "tiles" if page.is_tiled else ("one strip" if rows >= int(page.imagelength) else "strips")
    check_decode(
        name, f"its {kind} of {columns:,} x {rows:,} px", decoded_bytes(columns, rows, samples, itemsize)
    )


def check_plain(name: str, width: int, height: int, mode: str) -> None:
    """Refuse a PNG/JPEG (decoded whole) whose Pillow `mode` at this size exceeds the budget."""
    from PIL import Image

    samples = Image.getmodebands(mode) if mode else 3
    itemsize = 2 if mode.startswith("I;16") else (4 if mode in ("I", "F") else 1)
    size = f"{width:,} x {height:,} px" if height > 1 else f"{width:,} px"  # Pillow's bomb error: a count
    check_decode(name, f"the whole image ({size})", decoded_bytes(width, height, samples, itemsize))


def check_thumbnail_read(name: str, width: int, rows: float) -> None:
    """Refuse an image whose thumbnail needs more than the budget for one thumbnail row: `rows`
    rows of `width` px of its coarsest usable level (a very wide image with no pyramid)."""
    check_decode(
        name, f"a thumbnail row ({width:,} x {rows:,.0f} px, no coarser pyramid level)",
        decoded_bytes(width, max(1, int(rows)), RGB_BYTES, 1),
    )  # fmt: skip


def _megabytes(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f} MB"
