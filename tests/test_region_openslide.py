"""OpenSlide's own small test slides (tests/data/openslide, from openslide-python's source distribution)
through the region reader and `python -m core heatmap`: a real Aperio .svs is read through OpenSlide with
its resolution; a slide smaller than a patch, a damaged one and an unknown TIFF compression are refused
with a reason (exit 2, one line), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.region.heatmap import prepare
from core.region.reader import RegionImageError, open_region_image

FIXTURES = Path(__file__).parent / "data" / "openslide"


def test_a_real_aperio_slide_is_read_through_openslide_with_its_resolution():
    with open_region_image(FIXTURES / "small.svs") as slide:
        assert slide.backend == "openslide" and slide.vendor == "aperio"
        assert (slide.width, slide.height) == (16, 16) and slide.mpp == pytest.approx(0.499)
        pixels = slide.read(0, 0, 0, 16, 16)
        assert pixels.shape == (16, 16, 3) and pixels.std() > 0  # real content, not a blank fill
    with pytest.raises(RegionImageError, match="smaller than one 96x96 patch"):
        prepare(FIXTURES / "small.svs")


def test_damaged_slides_are_refused_with_a_reason():
    with open_region_image(FIXTURES / "unreadable.svs") as slide:  # its header opens …
        with pytest.raises(RegionImageError, match="could not read pixels"):  # … its tiles do not
            slide.read(0, 0, 0, 16, 16)
    with pytest.raises(RegionImageError, match="52479"):  # an unknown compression, named
        open_region_image(FIXTURES / "unopenable.tiff")


@pytest.mark.parametrize("name", ["small.svs", "unreadable.svs", "unopenable.tiff"])
def test_the_cli_refuses_them_in_one_line_with_exit_2(name, tmp_path, capsys):
    code = main(
        [
            "heatmap",
            "models/baseline.keras",
            str(FIXTURES / name),
            "--out",
            str(tmp_path / "out"),
            "--mpp",
            "0.1",
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.startswith("error: ") and len(error.splitlines()) == 1, error
