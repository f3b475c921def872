"""Region images that would decode to gigabytes are refused from their header (core.region.budget),
in core and on the command line; `heatmap` says so when no tile can be scored, refuses an absurd
--mpp in one line, and `heatmap-job` ends a refused image with its reason and no traceback.

The hostile files are a few hundred KB of deflate-compressed zeros built without decoding them
(tests/region_images.py); each decodes to more than the default 256 MB budget, or to more than a
lowered one (PATCHLENS_REGION_DECODE_MB) for the cheaper command-line files."""

from __future__ import annotations

import numpy as np
import pytest
from region_images import mosaic, write_png, write_zero_png, write_zero_strip_tiff

from core.cli import main
from core.constants import PCAM_MPP
from core.errors import ImageTooLargeError, PatchLensError
from core.region.reader import open_region_image

HOSTILE = {  # name: (writer, decoded MB at the reader's 3+ bytes a pixel)
    "strip.tif": (lambda path: write_zero_strip_tiff(path, 12_000, 12_000), 412),
    "rgb.png": (lambda path: write_zero_png(path, 10_000, 10_000), 286),
    "grey16.png": (lambda path: write_zero_png(path, 10_000, 10_000, bit_depth=16, colour=False), 286),
}


@pytest.fixture(scope="module")
def model_path(tiny_kaggle_model):
    return tiny_kaggle_model(5)[1]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_file_that_would_decode_past_the_budget_is_refused_from_its_header(tmp_path, name):
    write, megabytes = HOSTILE[name]
    path = write(tmp_path / name)
    assert path.stat().st_size < 2_000_000  # a small file …
    with pytest.raises(ImageTooLargeError, match=f"{megabytes:,} MB of memory to decode") as caught:
        open_region_image(path)  # … refused before a pixel is decoded
    assert isinstance(caught.value, PatchLensError) and "256 MB" in str(caught.value)
    assert "PATCHLENS_REGION_DECODE_MB" in str(caught.value)


def test_the_budget_is_a_setting_and_a_file_within_it_reads(tmp_path, monkeypatch):
    path = write_zero_strip_tiff(tmp_path / "strip.tif", 2_000, 1_500)  # 9 MB in one strip
    with open_region_image(path) as image:
        assert (image.width, image.height) == (2_000, 1_500)
        assert (image.read(0, 1_900, 1_400, 96, 96)[: 100 - 0, :] == 0).sum() > 0
    monkeypatch.setenv("PATCHLENS_REGION_DECODE_MB", "4")
    with pytest.raises(ImageTooLargeError, match="its one strip of 2,000 x 1,500 px .* more than the 4 MB"):
        open_region_image(path)


@pytest.mark.parametrize("name", ["strip.tif", "rgb.png"])
def test_the_cli_refuses_it_in_one_line_with_exit_2_and_writes_nothing(model_path, tmp_path, monkeypatch,
                                                                       run_cli, name):  # fmt: skip
    monkeypatch.setenv("PATCHLENS_REGION_DECODE_MB", "8")
    path = (write_zero_strip_tiff(tmp_path / name, 3_000, 3_000) if name.endswith(".tif")
            else write_zero_png(tmp_path / name, 2_000, 2_000))  # fmt: skip
    code, _, error = run_cli(
        "heatmap", str(model_path), str(path), "--out", str(tmp_path / "out"), "--mpp", "0.5"
    )
    assert code == 2 and len(error.strip().splitlines()) == 1, error
    assert "more than the 8 MB" in error and not (tmp_path / "out").exists()


def test_an_image_with_no_tissue_ends_with_words_and_exit_2(model_path, tmp_path, run_cli):
    glass = write_png(tmp_path / "glass.png", np.full((400, 500, 3), 250, np.uint8), mpp=PCAM_MPP)
    code, _, error = run_cli("heatmap", str(model_path), str(glass), "--out", str(tmp_path / "out"))
    assert code == 2 and len(error.strip().splitlines()) == 1, error
    assert "no tissue" in error and "no tile could be scored" in error
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("mpp", ["inf", "nan", "0", "-1", "1e300"])
def test_an_absurd_mpp_is_refused_in_one_line(model_path, tmp_path, run_cli, mpp):
    image = write_png(tmp_path / "mosaic.png", mosaic().pixels)
    code, _, error = run_cli(
        "heatmap", str(model_path), str(image), "--out", str(tmp_path / "out"), "--mpp", mpp
    )
    assert code == 2 and len(error.strip().splitlines()) == 1 and "Traceback" not in error, error
    assert "--mpp must be a resolution between" in error


def test_a_heatmap_job_on_a_refused_image_fails_with_its_reason_and_no_traceback(
    workspace, model_path, tmp_path, capsys
):
    path = write_zero_strip_tiff(tmp_path / "strip.tif", 12_000, 12_000)
    assert main(["heatmap-job", str(model_path), str(path), "--mpp", "0.5"]) == 1
    out, error = capsys.readouterr()
    assert out.startswith("failed: strip.tif: its one strip of 12,000 x 12,000 px"), out
    assert "Traceback" not in error and "Traceback" not in out
