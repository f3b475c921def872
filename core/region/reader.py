"""One lazy reader over every large image PatchLens scores: plain PNG/JPEG (Pillow), TIFF (plain,
tiled, pyramidal, OME-TIFF; tifffile) and whole-slide formats (OpenSlide).

A `RegionImage` has levels (level 0 = full resolution, each with its size and downsample), a
resolution in µm/px when the file carries one, and `read(level, x, y, width, height)`, which returns
uint8 RGB pixels of that window in the level's coordinates (outside the image: white, the colour of
glass). TIFF tiles or strips are decoded one segment at a time and kept in a small LRU cache, so a
40,000 px wide slide is never held in memory; a PNG/JPEG is decoded whole, at its first read. Sizes come
from headers; a file whose one decode exceeds the budget is refused first (core.region.budget). Every failure (missing file, text named .svs, a
truncated TIFF, an undecodable compression) is a RegionImageError whose message names the file.

The readers are one table, READERS (backend, file types, opener, formats in words): the backends a user
may name, the file types the Region page accepts and its words for them all derive from it, so a new
format is one entry plus its RegionImage class. What TIFF pages say is core.region.tiff_pages'.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import RegionImageError
from core.region.budget import check_plain, check_tiff_page
from core.region.tiff_pages import (  # noqa: F401  (PLAUSIBLE_MPP, plausible_mpp: re-exported for readers' callers)
    PLAUSIBLE_MPP,
    WHITE,
    check_complete,
    level_pages,
    plausible_mpp,
    segment_rgb,
    tiff_mpp,
)
from core.settings import region_decode_budget_bytes

PLAIN_EXTENSIONS = (".png", ".jpg", ".jpeg")
TIFF_EXTENSIONS = (".tif", ".tiff", ".btf", ".tf8")
SLIDE_EXTENSIONS = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")
SEGMENT_CACHE_BYTES = 32 * 1024 * 1024  # decoded TIFF tiles/strips kept (at least 3 rows of them)
DECODE_ROWS = 256  # rows of a decoded PNG/JPEG converted to RGB at a time


class RegionImage:
    """Levels, resolution and windowed reads of one large image (see the module docstring)."""

    backend = ""

    def __init__(self, path: Path, level_sizes: list[tuple[int, int]], mpp: float | None):
        self.path = Path(path)
        self.name = self.path.name
        self.level_sizes = level_sizes  # (width, height) per level
        self.mpp = mpp  # µm per level-0 pixel, from the file; None when it carries none

    @property
    def width(self) -> int:
        return self.level_sizes[0][0]

    @property
    def height(self) -> int:
        return self.level_sizes[0][1]

    @property
    def downsamples(self) -> list[float]:
        return [self.width / w for w, _ in self.level_sizes]

    def read(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """uint8 RGB (height, width, 3) of the window at (x, y) in `level`'s pixels."""
        out = np.full((height, width, 3), WHITE, dtype=np.uint8)
        level_width, level_height = self.level_sizes[level]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, level_width), min(y + height, level_height)
        if x1 > x0 and y1 > y0:
            try:
                out[y0 - y : y1 - y, x0 - x : x1 - x] = self._read_inside(level, x0, y0, x1 - x0, y1 - y0)
            except RegionImageError:
                raise
            except Exception as error:  # decoders raise many types for damaged data
                raise RegionImageError(f"{self.name}: could not read pixels ({error}).") from error
        return out

    def _read_inside(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- Pillow


class PlainImage(RegionImage):
    """A PNG or JPEG: its size from the header, its pixels decoded whole at the first read (these
    formats cannot be read by window), once the decode budget allows it."""

    backend = "pillow"

    def __init__(self, path: Path):
        from PIL import Image

        try:  # the header only
            with _pillow_open(path) as image:
                if image.format not in ("PNG", "JPEG", "MPO", "TIFF"):
                    raise RegionImageError(f"{path.name}: not a PNG or JPEG image ({image.format}).")
                check_plain(path.name, image.width, image.height, image.mode)
                dpi = image.info.get("dpi")
                size = image.size
                if image.format == "PNG":
                    image.verify()  # chunk checksums, without decoding: a damaged file fails here
        except Image.DecompressionBombError as error:  # beyond Pillow's limit: far beyond ours. "(N pixels)"
            check_plain(path.name, int((re.findall(r"\((\d+) pixels\)", str(error)) or [0])[0]), 1, "RGB")
            raise RegionImageError(f"{path.name}: not a readable image ({error}).") from error
        except (OSError, SyntaxError, ValueError) as error:
            raise RegionImageError(f"{path.name}: not a readable image ({error}).") from error
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()
        mpp = 25400.0 / float(dpi[0]) if dpi and float(dpi[0]) > 0 else None
        super().__init__(path, [size], plausible_mpp(mpp))

    @property
    def pixels(self) -> np.ndarray:
        """The whole image, uint8 RGB, decoded on first use."""
        with self._lock:
            if self._pixels is None:  # band by band into one array: Pillow's copy + ours, no third
                with _pillow_open(self.path) as image:
                    image.load()
                    self._pixels = np.empty((image.height, image.width, 3), dtype=np.uint8)
                    for top in range(0, image.height, DECODE_ROWS):
                        bottom = min(top + DECODE_ROWS, image.height)
                        self._pixels[top:bottom] = _rgb(image.crop((0, top, image.width, bottom)))
            return self._pixels

    def _read_inside(self, level, x, y, width, height):
        return self.pixels[y : y + height, x : x + width]


@contextmanager
def _pillow_open(path: Path):
    """Pillow's image at `path`, without its decompression-bomb warning (the decode budget is stricter)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            yield image


def _rgb(image) -> np.ndarray:
    """Pillow image -> uint8 RGB; transparency composited on white."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # integer division: no float copy of the image
        grey = np.minimum(np.asarray(image) // 257, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, 2)
    return np.asarray(image.convert("RGB"))


# ----------------------------------------------------------------------------- tifffile


class TiffImage(RegionImage):
    """A TIFF read segment by segment (tiles or strips) through tifffile, every pyramid level."""

    backend = "tifffile"

    def __init__(self, path: Path):
        import tifffile

        try:
            with _quiet("tifffile"):  # its warnings about damaged files would add lines to our one
                self.tiff = tifffile.TiffFile(path)
        except Exception as error:  # tifffile raises TiffFileError, ValueError, struct.error …
            raise RegionImageError(f"{path.name}: not a readable TIFF ({error}).") from error
        try:
            self.pages = level_pages(self.tiff, path.name)
            sizes = [(int(p.imagewidth), int(p.imagelength)) for p in self.pages]
            super().__init__(path, sizes, tiff_mpp(self.tiff, self.pages[0]))
            check_complete(self.pages, path)
            for level, page in enumerate(self.pages):  # before any decode: a 2 MB file may need 6 GB
                check_tiff_page(path.name, page, self._segment_shape(level))
            self._lock = threading.Lock()
            self._cache: OrderedDict = OrderedDict()
            self._cached_bytes = 0
            self._decode_segment(0, 0)  # an undecodable compression fails here, not mid-run
        except RegionImageError:
            self.tiff.close()
            raise
        except Exception as error:  # anything else tifffile trips on in a damaged file
            self.tiff.close()
            raise RegionImageError(f"{path.name}: not a readable TIFF ({error}).") from error

    def close(self) -> None:
        self.tiff.close()

    def _segment_shape(self, level: int) -> tuple[int, int]:
        page = self.pages[level]
        if page.is_tiled:
            return int(page.tilelength), int(page.tilewidth)
        return min(int(page.rowsperstrip or page.imagelength), int(page.imagelength)), int(page.imagewidth)

    def _read_inside(self, level, x, y, width, height):
        seg_h, seg_w = self._segment_shape(level)
        per_row = math.ceil(self.level_sizes[level][0] / seg_w)
        out = np.empty((height, width, 3), dtype=np.uint8)
        for sy in range(y // seg_h, (y + height - 1) // seg_h + 1):
            for sx in range(x // seg_w, (x + width - 1) // seg_w + 1):
                segment = self._decode_segment(level, sy * per_row + sx)
                top, left = sy * seg_h, sx * seg_w
                ya, yb = max(y, top), min(y + height, top + segment.shape[0])
                xa, xb = max(x, left), min(x + width, left + segment.shape[1])
                out[ya - y : yb - y, xa - x : xb - x] = segment[ya - top : yb - top, xa - left : xb - left]
        return out

    def _decode_segment(self, level: int, index: int) -> np.ndarray:
        with self._lock:
            key = (level, index)
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            page = self.pages[level]
            handle = self.tiff.filehandle
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            data = None
            if count:
                handle.seek(offset)
                data = handle.read(count)
            try:
                decoded, _, _ = page.decode(data, index, jpegtables=page.jpegtables)
            except Exception as error:
                compression = getattr(page.compression, "name", page.compression)  # an int when unknown
                raise RegionImageError(
                    f"{self.name}: cannot decode its {compression} data ({error})."
                ) from error
            segment = segment_rgb(np.asarray(decoded)[0])
            self._cache[key] = segment
            self._cached_bytes += segment.nbytes
            three_rows = 3 * segment.nbytes * math.ceil(page.imagewidth / segment.shape[1])
            budget = max(SEGMENT_CACHE_BYTES, min(three_rows, region_decode_budget_bytes()))
            while self._cached_bytes > budget and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= dropped.nbytes
            return segment


@contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------------------- OpenSlide


class SlideImage(RegionImage):
    """A whole-slide image (Aperio, Hamamatsu, MIRAX, generic tiled TIFF, …) through OpenSlide."""

    backend = "openslide"

    def __init__(self, path: Path):
        import openslide

        try:
            vendor = openslide.OpenSlide.detect_format(str(path))
        except Exception:  # detect_format raises on some unreadable files instead of returning None
            vendor = None
        if vendor is None:
            raise RegionImageError(f"{path.name}: not a slide format OpenSlide can read.")
        try:
            self.slide = openslide.OpenSlide(str(path))
        except Exception as error:  # OpenSlideError, OpenSlideUnsupportedFormatError
            raise RegionImageError(f"{path.name}: OpenSlide cannot open it ({error}).") from error
        self.vendor = vendor
        try:
            mpp = float(self.slide.properties.get("openslide.mpp-x", "nan"))
        except ValueError:
            mpp = None
        super().__init__(
            path, [tuple(map(int, size)) for size in self.slide.level_dimensions], plausible_mpp(mpp)
        )

    def close(self) -> None:
        self.slide.close()

    def _read_inside(self, level, x, y, width, height):
        downsample = self.slide.level_downsamples[level]
        region = self.slide.read_region(
            (round(x * downsample), round(y * downsample)), level, (width, height)
        )
        return _rgb(region)


# ----------------------------------------------------------------------------- opening


@dataclass(frozen=True)
class Reader:
    """One entry of the reader table: a backend a user may name, the file types it reads when the
    backend is left to `auto`, how it opens a file, and the formats in words (the Region page's help)."""

    backend: str
    extensions: tuple[str, ...]
    open: Callable[[Path], RegionImage]
    words: str
    fallback: str | None = None  # the backend `auto` tries when this one cannot decode the file


READERS = (  # a new reader: one entry here, plus its RegionImage class
    Reader("pillow", PLAIN_EXTENSIONS, PlainImage, "PNG/JPEG"),
    Reader("tifffile", TIFF_EXTENSIONS, TiffImage, "TIFF (tiled, pyramidal, OME-TIFF)", fallback="openslide"),
    Reader("openslide", SLIDE_EXTENSIONS, SlideImage, "a slide OpenSlide reads (.svs, .ndpi, .mrxs, …)"),
)
READER_BY_BACKEND = {reader.backend: reader for reader in READERS}
BACKENDS = ("auto", *READER_BY_BACKEND)
REGION_EXTENSIONS = tuple(extension for reader in READERS for extension in reader.extensions)
REGION_FORMATS = ", ".join(reader.words for reader in READERS[:-1]) + f" or {READERS[-1].words}"


def open_region_image(path: str | Path, backend: str = "auto") -> RegionImage:
    """Open a region image or slide with the reader its format needs (or the one named).

    Raises RegionImageError for a missing, unreadable, damaged or unsupported file.
    """
    if backend not in BACKENDS:
        raise RegionImageError(f"Unknown reader {backend!r}; choose one of: {', '.join(BACKENDS)}.")
    path = Path(path).expanduser()
    if not path.is_file():
        raise RegionImageError(f"No image file at {path}.")
    if path.stat().st_size == 0:
        raise RegionImageError(f"{path.name}: the file is empty (0 bytes).")
    reader = READER_BY_BACKEND.get(backend) or _reader_for(path)
    try:
        return reader.open(path)
    except RegionImageError as error:
        if reader.fallback and "cannot decode" in str(error) and backend == "auto":  # e.g. JPEG tiles
            try:  # without imagecodecs
                return READER_BY_BACKEND[reader.fallback].open(path)
            except RegionImageError:
                pass
        raise


def _reader_for(path: Path) -> Reader:
    """The reader whose file types include `path`'s; RegionImageError listing them all when none does."""
    suffix = path.suffix.lower()
    for reader in READERS:
        if suffix in reader.extensions:
            return reader
    known = " ".join(REGION_EXTENSIONS)
    raise RegionImageError(
        f"{path.name}: unsupported file type {suffix or '(none)'}; expected one of {known}."
    )
