"""decode_patch accepts every 96x96 patch in any colour mode and refuses everything else plainly."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.constants import CENTRE_BOX, PATCH_SHAPE
from core.data.images import decode_patch, draw_centre_box, encode_png
from core.errors import PatchError


@pytest.fixture(scope="module")
def tiff_bytes(sample_dir) -> bytes:
    return next((sample_dir / "train").glob("*.tif")).read_bytes()


@pytest.fixture(scope="module")
def patch(tiff_bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(tiff_bytes)).convert("RGB"))


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def assert_patch(array: np.ndarray) -> None:
    assert array.shape == PATCH_SHAPE and array.dtype == np.uint8


# --- real patches ------------------------------------------------------------------------------


def test_kaggle_tiffs_decode_exactly_as_pillow_reads_them(sample_dir):
    for path in sorted((sample_dir / "train").glob("*.tif"))[:200]:
        expected = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_array_equal(decode_patch(path), expected)


def test_path_str_and_bytes_give_the_same_pixels(sample_dir, tiff_bytes, patch):
    path = next((sample_dir / "train").glob("*.tif"))
    np.testing.assert_array_equal(decode_patch(str(path)), patch)
    np.testing.assert_array_equal(decode_patch(tiff_bytes), patch)


def test_decoded_array_is_a_writable_copy(tiff_bytes):
    array = decode_patch(tiff_bytes)
    array[0, 0] = 0  # must not raise (read-only view) nor touch the source bytes
    assert array.flags.writeable


def test_png_is_lossless_and_jpeg_close(patch):
    np.testing.assert_array_equal(decode_patch(encoded(Image.fromarray(patch))), patch)
    jpeg = decode_patch(encoded(Image.fromarray(patch), "JPEG", quality=95))
    assert np.abs(jpeg.astype(int) - patch).mean() < 4


# --- colour modes --------------------------------------------------------------------------


def test_greyscale_palette_cmyk_and_1bit_become_rgb(patch):
    image = Image.fromarray(patch)
    for mode in ("L", "P", "1"):
        converted = image.convert(mode)
        expected = np.asarray(converted.convert("RGB"))
        np.testing.assert_array_equal(decode_patch(encoded(converted)), expected)
    cmyk = decode_patch(encoded(image.convert("CMYK"), "JPEG", quality=95))
    assert_patch(cmyk)
    cmyk_tiff = decode_patch(encoded(image.convert("CMYK"), "TIFF"))
    np.testing.assert_array_equal(cmyk_tiff, np.asarray(image.convert("CMYK").convert("RGB")))


def test_alpha_is_composited_on_white(patch):
    rgba = np.dstack([patch, np.full(patch.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent top rows
    rgba[10:20, :, 3] = 128
    decoded = decode_patch(encoded(Image.fromarray(rgba, "RGBA")))
    assert (decoded[:10] == 255).all()
    np.testing.assert_array_equal(decoded[20:], patch[20:])
    half = decoded[10:20].astype(int)
    np.testing.assert_allclose(half, (patch[10:20].astype(int) + 255) / 2, atol=2)
    la = Image.fromarray(rgba, "RGBA").convert("LA")
    assert (decode_patch(encoded(la))[:10] == 255).all()


def test_palette_transparency_is_composited_on_white(patch):
    palette = Image.fromarray(patch).convert("P")
    transparent_index = palette.getpixel((0, 0))
    decoded = decode_patch(encoded(palette, transparency=transparent_index))
    assert (decoded[0, 0] == 255).all()


def test_16bit_greyscale_png_is_scaled_to_8bit(patch):
    grey8 = np.asarray(Image.fromarray(patch).convert("L")).astype(np.uint16)
    grey16 = Image.fromarray(grey8 * 257)  # 0..65535, mode I;16
    assert grey16.mode.startswith("I;16")
    decoded = decode_patch(encoded(grey16))
    np.testing.assert_array_equal(decoded[:, :, 0], grey8)
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 2])


def test_16bit_big_endian_32bit_int_and_float_tiffs(patch):
    grey8 = np.asarray(Image.fromarray(patch).convert("L"))
    big_endian = Image.frombytes("I;16B", (96, 96), (grey8.astype(">u2") * 257).tobytes())
    np.testing.assert_array_equal(decode_patch(encoded(big_endian, "TIFF"))[:, :, 1], grey8)
    as_int32 = Image.fromarray(grey8.astype(np.int32) * 257)  # mode I
    np.testing.assert_array_equal(decode_patch(encoded(as_int32, "TIFF"))[:, :, 1], grey8)
    as_float = Image.fromarray(grey8.astype(np.float32) / 255)  # mode F in [0, 1]
    np.testing.assert_array_equal(decode_patch(encoded(as_float, "TIFF"))[:, :, 1], grey8)


def raw_tiff(pixels: np.ndarray, bits: int) -> bytes:
    """A minimal uncompressed little-endian RGB TIFF with `bits` per sample (Pillow cannot write 16-bit RGB)."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2" if bits == 16 else np.uint8).tobytes()
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 3, 8 + 2 + 12 * 10 + 4),  # offset of the three bit counts, right after the IFD
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 8 + 2 + 12 * 10 + 4 + 6),
        (277, 3, 1, 3),
        (278, 3, 1, height),
        (279, 4, 1, len(data)),
        (284, 3, 1, 1),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + struct.pack(
            "<I" if kind == 4 else "<HH", value, *(() if kind == 4 else (0,))
        )
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + ifd
        + struct.pack("<I", 0)
        + struct.pack("<HHH", bits, bits, bits)
        + data
    )


def test_hand_written_8bit_tiff_takes_the_fast_path_and_16bit_rgb_is_scaled(patch):
    np.testing.assert_array_equal(decode_patch(raw_tiff(patch, 8)), patch)
    try:
        decoded = decode_patch(raw_tiff(patch.astype(np.uint16) * 257, 16))
    except PatchError as error:  # acceptable only as a plain refusal
        assert "patch" in str(error)
    else:
        np.testing.assert_array_equal(decoded, patch)


def test_animated_png_and_multipage_tiff_give_the_first_frame(patch):
    first, second = Image.fromarray(patch), Image.fromarray(255 - patch)
    for format in ("PNG", "TIFF"):
        data = encoded(first, format, save_all=True, append_images=[second])
        np.testing.assert_array_equal(decode_patch(data), patch)


# --- refusals ---------------------------------------------------------------------------------


def test_wrong_size_says_what_was_expected_and_why(tmp_path, patch):
    path = tmp_path / "big.png"
    Image.fromarray(patch).resize((200, 200)).save(path)
    with pytest.raises(PatchError) as caught:
        decode_patch(path)
    message = str(caught.value)
    assert "big.png" in message and "96×96" in message and "got 200×200" in message and "10×" in message


def test_empty_bytes_and_empty_file(tmp_path):
    with pytest.raises(PatchError, match="empty"):
        decode_patch(b"")
    (tmp_path / "nothing.tif").write_bytes(b"")
    with pytest.raises(PatchError, match=r"nothing\.tif.*empty"):
        decode_patch(tmp_path / "nothing.tif")


def test_text_renamed_tif_is_not_an_image(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("id,label\nabc,1\n")
    with pytest.raises(PatchError, match=r"notes\.tif: not a readable image"):
        decode_patch(path)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_tiff_raises_instead_of_padding(tiff_bytes, keep):
    with pytest.raises(PatchError, match="cut.tif"):
        decode_patch(tiff_bytes[: int(len(tiff_bytes) * keep)], name="cut.tif")


def test_truncated_png_raises(patch):
    data = encoded(Image.fromarray(patch))
    with pytest.raises(PatchError, match="truncated or damaged") as refused:
        decode_patch(data[: len(data) // 2])
    assert "bytes not processed" not in str(refused.value)  # Pillow's buffer count misleads


def test_a_kaggle_tiff_missing_two_thirds_says_how_much_is_there(tiff_bytes):
    cut = tiff_bytes[: len(tiff_bytes) // 3]
    with pytest.raises(PatchError) as refused:
        decode_patch(cut, name="truncated.tif")
    reason = (
        f"the file is truncated: it ends after {len(cut):,} of the {len(tiff_bytes):,} bytes "
        "this 96×96 RGB TIFF needs."
    )
    assert str(refused.value) == f"truncated.tif: {reason}"
    assert "bytes not processed" not in str(refused.value)


def test_the_reason_is_also_given_without_the_name(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("id,label\nabc,1\n")
    with pytest.raises(PatchError) as refused:
        decode_patch(path)
    assert refused.value.reason == "not a readable image (TIFF, PNG or JPEG expected)."
    assert str(refused.value) == f"notes.tif: {refused.value.reason}"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(PatchError, match="not found"):
        decode_patch(tmp_path / "absent.png")
    with pytest.raises(PatchError, match="folder"):
        decode_patch(tmp_path)


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (the pixel data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(100_000, 100_000), (5000, 5000), (60_000, 1)])
def test_decompression_bombs_are_refused_before_decoding(size):
    started = time.perf_counter()
    with pytest.raises(PatchError, match="bomb.png") as caught:
        decode_patch(png_claiming_size(*size), name="bomb.png")
    assert time.perf_counter() - started < 1.0
    assert "96×96" in str(caught.value)


def test_real_10000px_1bit_image_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(path)
    with pytest.raises(PatchError, match=r"huge\.png: refused"):
        decode_patch(path)


def test_unsupported_format_is_refused_plainly(patch):
    with pytest.raises(PatchError, match="not a readable image"):
        decode_patch(encoded(Image.fromarray(patch), "BMP"))


# --- properties on hostile input ---------------------------------------------------------------


def decode_or_refuse(data: bytes) -> None:
    try:
        array = decode_patch(data)
    except PatchError:
        return
    assert_patch(array)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_give_a_patch_or_a_patch_error(data):
    decode_or_refuse(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_real_files_give_a_patch_or_a_patch_error(data, tiff_bytes, patch):
    source = data.draw(
        st.sampled_from(
            [tiff_bytes, encoded(Image.fromarray(patch)), encoded(Image.fromarray(patch), "JPEG")]
        )
    )
    damaged = bytearray(source)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(damaged)))
    decode_or_refuse(bytes(damaged[:cut]))


# --- helpers for pages -------------------------------------------------------------------------


def test_encode_png_round_trips(patch):
    np.testing.assert_array_equal(decode_patch(encode_png(patch)), patch)
    with pytest.raises(PatchError):
        encode_png(patch.astype(np.float32))


def test_centre_box_outline_leaves_the_labelled_centre_untouched(patch):
    boxed = draw_centre_box(patch, colour=(0, 255, 0), width=2)
    left, top, right, bottom = CENTRE_BOX
    np.testing.assert_array_equal(boxed[top:bottom, left:right], patch[top:bottom, left:right])
    assert (boxed[top - 1, left:right] == (0, 255, 0)).all()
    assert (boxed[top - 2, left:right] == (0, 255, 0)).all()
    assert (boxed[bottom, left:right] == (0, 255, 0)).all()
    assert (boxed[top:bottom, right + 1] == (0, 255, 0)).all()
    np.testing.assert_array_equal(boxed[: top - 2], patch[: top - 2])
    assert not np.shares_memory(boxed, patch)


def test_centre_box_scales_with_an_upscaled_patch(patch):
    big = np.asarray(Image.fromarray(patch).resize((192, 192), Image.NEAREST))
    boxed = draw_centre_box(big)
    np.testing.assert_array_equal(boxed[64:128, 64:128], big[64:128, 64:128])
    assert (boxed[63, 64:128] == (0, 255, 0)).all()
