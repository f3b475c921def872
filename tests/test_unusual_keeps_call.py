"""`out_of_distribution` warns, it does not withhold (issue 19 item 2): a patch the model finds unusual
keeps its call and counts as one on Predict, and its Region tile stays on the map; the image flags
(background, not_he, blurred) still withhold the call. Real bundled patches, the real upload path."""

from __future__ import annotations

import numpy as np
from page_helpers import png_bytes

from core.constants import PCAM_MPP
from core.data.images import decode_patch
from core.data.quality import FLAG_BADGES, OUT_OF_DISTRIBUTION, withholds
from core.evaluate.uploads import decode_uploads, upload_counts, upload_results, with_model_verdict
from core.region.outputs import FLAG_BITS, cell_map
from core.region.tiling import Grid
from core.settings import SAMPLE_DATASET


def real_patch_png(k: int = 0) -> bytes:
    path = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[k]
    return png_bytes(decode_patch(path.read_bytes()))


def test_an_unusual_patch_keeps_its_call_and_counts_as_one():
    batch = decode_uploads([("a.png", real_patch_png(0)), ("b.png", real_patch_png(1))])
    assert batch.quality == ["ok", "ok"]
    batch = with_model_verdict(batch, np.array([True, False]))  # the model finds a.png unusual
    assert batch.quality == [OUT_OF_DISTRIBUTION, "ok"]
    results = upload_results(batch, np.array([0.9, 0.2]), 0.5).set_index("file")
    assert results.loc["a.png", "call"] == "tumour" and results.loc["b.png", "call"] == "normal"
    counts = upload_counts(results.reset_index())
    assert counts["tumour"] == 1 and counts["normal"] == 1 and counts["flagged"] == 0
    assert "not meaningful" not in FLAG_BADGES[OUT_OF_DISTRIBUTION]


def test_an_image_flag_still_withholds_the_call_with_or_without_the_models_warning():
    assert withholds("not_he") and withholds("blurred;out_of_distribution") and withholds("background")
    assert not withholds("ok") and not withholds(OUT_OF_DISTRIBUTION)
    flat = np.full((96, 96, 3), 200, dtype=np.uint8)  # a solid colour: not H&E
    batch = decode_uploads([("flat.png", png_bytes(flat))])
    batch = with_model_verdict(batch, np.array([True]))
    results = upload_results(batch, np.array([0.9]), 0.5)
    assert results.loc[0, "call"] == "" and upload_counts(results)["flagged"] == 1


def test_an_unusual_region_tile_stays_on_the_map_and_an_image_flag_leaves_it_out():
    grid = Grid(width=288, height=96, mpp=PCAM_MPP, model_mpp=PCAM_MPP, stride=96)  # 1 x 3 tiles
    probabilities = np.array([[0.2, 0.9, 0.8]], dtype=np.float32)
    flags = np.zeros_like(probabilities, dtype=np.uint8)
    flags[0, 1] = FLAG_BITS[OUT_OF_DISTRIBUTION]
    flags[0, 2] = FLAG_BITS["blurred"] | FLAG_BITS[OUT_OF_DISTRIBUTION]
    cells = cell_map(probabilities, flags, grid)
    assert cells[0, 1] == np.float32(0.9)
    assert np.isnan(cells[0, 2])
