"""Reading region images and slides, the tile grid and the tissue mask (core.region; no TensorFlow):
real patches in a mosaic written as PNG, as a tiled pyramidal TIFF and read through OpenSlide, plus
hostile files."""

from __future__ import annotations

import numpy as np
import pytest
from region_images import BLANK_ROW, mosaic, write_png, write_pyramid_tiff

from core.constants import IMAGE_SIZE, PCAM_MPP
from core.errors import PatchLensError
from core.region.heatmap import prepare
from core.region.outputs import cell_map
from core.region.reader import RegionImageError, open_region_image
from core.region.tiling import Grid, read_band, read_level


@pytest.fixture(scope="module")
def image():
    return mosaic()


@pytest.fixture(scope="module")
def files(image, tmp_path_factory):
    root = tmp_path_factory.mktemp("region")
    return {
        "png": write_png(root / "mosaic.png", image.pixels),
        "tiff": write_pyramid_tiff(root / "mosaic.tif", image.pixels),
    }


@pytest.mark.parametrize("kind,backend", [("png", "auto"), ("tiff", "auto"), ("tiff", "openslide")])
def test_every_reader_returns_the_exact_pixels_of_any_window(image, files, kind, backend):
    with open_region_image(files[kind], backend) as region:
        assert (region.width, region.height) == image.pixels.shape[1::-1]
        window = region.read(0, 50, 70, 300, 200)  # across TIFF tile borders
        assert (window == image.pixels[70:270, 50:350]).all()
        edge = region.read(0, image.pixels.shape[1] - 10, -5, 20, 10)  # outside the image: white glass
        assert (
            (edge[5:, :10] == image.pixels[:5, -10:]).all()
            and (edge[:5] == 255).all()
            and (edge[:, 10:] == 255).all()
        )


def test_a_pyramidal_tiff_has_its_levels_and_resolution(files):
    with open_region_image(files["tiff"]) as tiff, open_region_image(files["tiff"], "openslide") as slide:
        assert tiff.backend == "tifffile" and slide.backend == "openslide"
        for region in (tiff, slide):
            assert region.downsamples == pytest.approx([1.0, 2.0], abs=0.01)
            assert region.mpp == pytest.approx(PCAM_MPP, rel=1e-6)
        assert (tiff.read(1, 0, 0, 40, 40) == slide.read(1, 0, 0, 40, 40)).all()


def test_an_ome_tiff_gives_its_physical_pixel_size(image, tmp_path):
    import tifffile

    path = tmp_path / "region.ome.tif"
    tifffile.imwrite(path, image.pixels, tile=(128, 128), photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.486, "PhysicalSizeY": 0.486})  # fmt: skip
    with open_region_image(path) as region:
        assert region.mpp == pytest.approx(0.486)
        assert (region.read(0, 0, 0, 96, 96) == image.pixels[:96, :96]).all()


def test_a_finer_image_is_read_at_the_level_nearest_the_model_and_resampled(image, tmp_path):
    # The mosaic upscaled 2x and labelled 0.486 µm/px: level 1 (2x down) is at the model's resolution.
    doubled = image.pixels.repeat(2, axis=0).repeat(2, axis=1)
    path = write_pyramid_tiff(tmp_path / "fine.tif", doubled, mpp=PCAM_MPP / 2, levels=2)
    with open_region_image(path) as region:
        grid = Grid(region.width, region.height, region.mpp, PCAM_MPP)
        assert grid.shape == (5, 6) and read_level(region, grid) == 1
        band = read_band(region, grid, 1, 0, 0, 6)
        assert band.shape == (IMAGE_SIZE, 6 * IMAGE_SIZE, 3) and (band == image.pixels[:96]).all()
        # Level 0 alone (no pyramid): the same tiles come out of a 2x box-filter shrink.
        shrunk = read_band(region, grid, 0, 0, 0, 6)
        assert np.abs(shrunk.astype(int) - image.pixels[:96]).max() <= 1


def test_a_resolution_given_by_hand_also_picks_the_level(image, tmp_path):
    doubled = image.pixels.repeat(2, axis=0).repeat(2, axis=1)
    path = write_pyramid_tiff(tmp_path / "bare.tif", doubled, mpp=None, levels=2)
    plan = prepare(path, mpp=PCAM_MPP / 2)
    with plan.image:
        assert plan.image.mpp is None and plan.mpp_source == "given"
        assert plan.level == 1 and plan.grid.shape == (5, 6)


def test_the_grid_follows_the_tile_geometry():
    grid = Grid(width=1000, height=500, mpp=0.486, model_mpp=PCAM_MPP, stride=48)
    assert grid.model_size == (500, 250)
    assert grid.shape == ((250 - 96) // 48 + 1, (500 - 96) // 48 + 1)
    x, y, size, _ = grid.tile_box(2, 3)  # model px [96, 192) x [144, 240) -> level 0 at 2x
    assert (x, y, size) == (288.0, 192.0, 192.0)


def test_the_tissue_mask_skips_the_blank_band_and_keeps_every_patch(image, files):
    plan = prepare(files["png"], mpp=PCAM_MPP)
    with plan.image:
        assert plan.tissue.shape == (5, 6)
        assert not plan.tissue[BLANK_ROW].any()
        assert all(plan.tissue[cell] for cell in image.cells)


def test_overlapping_tiles_average_on_cells():
    grid = Grid(width=192, height=96, mpp=PCAM_MPP, model_mpp=PCAM_MPP, stride=48)  # 1 x 3 tiles, 2 x 4 cells
    probabilities = np.array([[0.2, np.nan, 0.8]], dtype=np.float32)
    flags = np.zeros_like(probabilities, dtype=np.uint8)
    cells = cell_map(probabilities, flags, grid)
    assert cells.shape == (2, 4)
    np.testing.assert_allclose(cells[0], [0.2, 0.2, 0.8, 0.8])
    flags[0, 2] = 1  # a flagged tile is left out of the map
    assert np.isnan(cell_map(probabilities, flags, grid)[0, 2:]).all()


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("slide.svs", b"this is not a slide\n", "not a slide format OpenSlide can read"),
        ("notes.tif", b"plain text, not a TIFF\n", "not a readable TIFF"),
        ("empty.png", b"", "empty"),
        ("region.bmp", b"BM", "unsupported file type"),
    ],
)
def test_hostile_files_are_refused_with_a_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RegionImageError, match=message) as caught:
        open_region_image(path)
    assert isinstance(caught.value, PatchLensError)


def test_a_truncated_tiff_is_refused(files, tmp_path):
    data = files["tiff"].read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegionImageError, match="truncated|not a readable TIFF"):
        open_region_image(path)


def test_an_image_smaller_than_a_patch_or_without_resolution_is_refused(image, tmp_path):
    small = write_png(tmp_path / "small.png", image.pixels[:80, :200], mpp=PCAM_MPP)
    with pytest.raises(RegionImageError, match="smaller than one 96x96 patch"):
        prepare(small)
    plain = write_png(tmp_path / "plain.png", image.pixels)  # no resolution in the file
    with pytest.raises(RegionImageError, match="--mpp"):
        prepare(plain)
    plan = prepare(write_png(tmp_path / "dpi.png", image.pixels, mpp=PCAM_MPP))  # pHYs in the PNG
    with plan.image:
        assert plan.image.mpp == pytest.approx(PCAM_MPP, rel=1e-5) and plan.grid.scale == 1.0
