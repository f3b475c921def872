"""Shared by the region tests: region images built at test time from real bundled patches.

Not a test module. A mosaic is a grid of real sample patches (with known labels) that the input-quality
gate passes, with one blank (white glass) band of tiles, written as PNG or as a tiled pyramidal TIFF
with resolution tags (tifffile), at PCam's resolution, so at stride 96 each tile is exactly one patch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.constants import IMAGE_SIZE, PCAM_MPP
from core.settings import SAMPLE_DATASET

MOSAIC_ROWS, MOSAIC_COLS = 4, 6  # patch rows and columns of tissue
BLANK_ROW = 2  # the row of tiles (of the image) left blank: glass
TIFF_TILE = 128


@dataclass
class Mosaic:
    pixels: np.ndarray  # (H, W, 3) uint8, the whole image
    patches: np.ndarray  # (n, 96, 96, 3) the patches placed, row by row
    labels: np.ndarray  # (n,) their Kaggle labels
    cells: list[tuple[int, int]]  # the (row, col) of the image's tile grid that holds each patch


def mosaic() -> Mosaic:
    """MOSAIC_ROWS x MOSAIC_COLS real patches the quality gate passes (both labels), blank band inside."""
    from core.data.images import decode_patch
    from core.data.quality import quality_labels

    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:80]
    patches = np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{r['id']}.tif") for r in rows])
    keep = [k for k, label in enumerate(quality_labels(patches)) if label == "ok"][
        : MOSAIC_ROWS * MOSAIC_COLS
    ]
    labels = np.array([int(rows[k]["label"]) for k in keep])
    assert set(labels) == {0, 1}
    image = np.full(((MOSAIC_ROWS + 1) * IMAGE_SIZE, MOSAIC_COLS * IMAGE_SIZE, 3), 255, dtype=np.uint8)
    cells = []
    for n, k in enumerate(keep):
        row, col = divmod(n, MOSAIC_COLS)
        row += row >= BLANK_ROW
        image[row * IMAGE_SIZE : (row + 1) * IMAGE_SIZE, col * IMAGE_SIZE : (col + 1) * IMAGE_SIZE] = patches[
            k
        ]
        cells.append((row, col))
    return Mosaic(image, patches[keep], labels, cells)


def write_png(path: Path, pixels: np.ndarray, mpp: float | None = None) -> Path:
    from PIL import Image

    options = {"dpi": (25400 / mpp, 25400 / mpp)} if mpp else {}
    Image.fromarray(pixels).save(path, **options)
    return path


def write_pyramid_tiff(path: Path, pixels: np.ndarray, mpp: float | None = PCAM_MPP, levels: int = 2) -> Path:
    """A tiled (zlib) pyramidal TIFF, each level a top-level page (what OpenSlide's generic-tiff reads),
    with resolution tags in pixels per centimetre (none when `mpp` is None)."""
    import tifffile

    with tifffile.TiffWriter(path) as writer:
        for level in range(levels):
            step = 2**level
            tags = {"resolution": (1e4 / (mpp * step),) * 2, "resolutionunit": "CENTIMETER"} if mpp else {}
            writer.write(pixels[::step, ::step], tile=(TIFF_TILE, TIFF_TILE), compression="zlib", photometric="rgb",
                         subfiletype=1 if level else 0, **tags)  # fmt: skip
    return path


# ----------------------------------------------------------------------------- hostile files
# Files of a few hundred KB that decode to gigabytes: all-zero pixels in one deflate stream, built
# without ever holding (or compressing) the decoded bytes, so a test makes one in well under a second.

ZERO_BLOCK = 1 << 20  # zero bytes per repeated deflate block


def zlib_zeros(count: int) -> bytes:
    """A valid zlib stream of `count` zero bytes: one deflate block of ZERO_BLOCK zeros ended by a
    full flush (byte-aligned, no history) repeated, a final block for the rest, and the Adler-32
    of `count` zeros, which is (count mod 65521) << 16 | 1."""
    import zlib

    def raw(size: int, flush: int) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return compressor.compress(bytes(size)) + compressor.flush(flush)

    repeats, rest = divmod(count, ZERO_BLOCK)
    body = raw(ZERO_BLOCK, zlib.Z_FULL_FLUSH) * repeats + raw(rest, zlib.Z_FINISH)
    checksum = ((count % 65521) << 16) | 1
    return b"\x78\xda" + body + checksum.to_bytes(4, "big")


def write_zero_strip_tiff(path: Path, width: int, height: int) -> Path:
    """An RGB deflate TIFF of `width` x `height` black pixels in a single strip (as the issue's
    2.6 MB, 30,000² px file), written by hand: tifffile would need the decoded strip."""
    import struct

    data = zlib_zeros(width * height * 3)
    bits_at, data_at, ifd_at = 8, 16, 16 + len(data) + (len(data) % 2)
    entries = [  # (tag, type, count, value): 3 = SHORT, 4 = LONG
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 8), (262, 3, 1, 2),
        (273, 4, 1, data_at), (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, len(data)), (284, 3, 1, 1),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 and count == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    header = b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<3H", 8, 8, 8) + b"\0\0"
    path.write_bytes(header + data + b"\0" * (len(data) % 2) + ifd + b"\0\0\0\0")
    return path


def write_zero_png(path: Path, width: int, height: int, *, bit_depth: int = 8, colour: bool = True) -> Path:
    """A PNG of `width` x `height` black pixels (RGB, or grey at 16 bits), a few hundred KB."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    samples = 3 if colour else 1
    row = 1 + width * samples * bit_depth // 8  # a filter byte, then the row's samples
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2 if colour else 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib_zeros(row * height)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path
