"""Honest heatmap scales, on the bundled baseline model and real patches of the bundled sample.

Issue 9, item 11: on a near-blank patch (P ~ 0.004) Grad-CAM++ drew a strong red spot on empty
background and Grad-CAM a hot band along the top edge, because every map was stretched to its own
maximum. Measured here: those maps are 1-10 % as strong as a tumour patch's, so on the shared
scale they are drawn faint; the band follows the tissue at the top edge (flip the patch and it
moves), and a blank patch gives no map at all, so it is not a padding artefact.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import zoom

from core.data.images import decode_patch
from core.evaluate.explain import Explainer
from core.evaluate.heatmaps import (
    COLOUR_BAR_HEIGHT,
    LABEL_BAND_HEIGHT,
    colormap_table,
    describe_scale,
    describe_strength,
    labelled_colour_bar,
    resize_to_patch,
    scale_labels,
)
from core.settings import PROJECT_DIR, SAMPLE_DATASET

BLANK = "96974eeef9a45bdc6335734620d6c60620a633f0"  # white background, P(tumour) 0.004
EDGE_TISSUE = "1aa78f49434076d8cab7af4d793bd12d9d2951c2"  # tissue along the top edge only, P 0.033
TUMOUR = "92840a5b90b38c3eb719b3ea6f0ef1782ec0e747"  # label 1, P(tumour) 1.000


def centre_row(column: np.ndarray) -> float:
    """The centre of mass of a heatmap column, in rows."""
    return float((column * np.arange(len(column))).sum() / column.sum())


def read(patch_id: str) -> np.ndarray:
    return decode_patch(SAMPLE_DATASET / "train" / f"{patch_id}.tif")


@pytest.fixture(scope="module")
def explainer():
    from core.model.io import load_model

    return Explainer(load_model(PROJECT_DIR / "models" / "baseline.keras"))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_a_near_blank_patch_has_a_far_weaker_map_than_a_tumour_patch(explainer, method):
    explanation = explainer.explain(np.stack([read(BLANK), read(TUMOUR)]), method)
    assert explanation.scale == "shared"
    blank_strength, tumour_strength = explanation.strengths
    assert tumour_strength > 0.5 * explanation.references[1]  # a strong map by the reference
    assert blank_strength < 0.02 * tumour_strength
    np.testing.assert_allclose(explanation.strengths, explanation.raw.max(axis=(1, 2)), rtol=0.3)
    # On the shared scale the faint map is drawn faint, the strong one hot.
    blank_map, tumour_map = explanation.heatmaps
    assert blank_map.max() < 0.05 and tumour_map.max() > 0.9
    np.testing.assert_allclose(
        explanation.relative_strengths(), explanation.strengths / explanation.references, rtol=1e-6
    )


def test_on_its_own_scale_the_faint_gradcam_plus_plus_map_is_as_red_as_any(explainer):
    """The behaviour the issue saw, still available when asked for, and labelled as such."""
    own = explainer.explain(read(BLANK), "gradcam++", scale="own")
    shared = explainer.explain(read(BLANK), "gradcam++", scale="shared")
    assert own.scale == "own" and own.references is None
    assert own.heatmaps.max() == 1.0 and shared.heatmaps.max() < 0.05
    np.testing.assert_array_equal(own.raw, shared.raw)  # the same map, drawn two ways
    assert "its own range" in describe_scale(own, "Grad-CAM++")


def test_gradcam_plus_plus_strength_does_not_grow_with_exp_of_the_score(explainer):
    """tf-keras-vis multiplies Grad-CAM++ by exp(logit): ~1e5 on a confident tumour patch. Divided
    out, its strength is of the order of Grad-CAM's (same units: score per activation)."""
    patches = np.stack([read(TUMOUR), read(EDGE_TISSUE)])
    plus = explainer.explain(patches, "gradcam++").strengths
    plain = explainer.explain(patches, "gradcam").strengths
    # Within a factor of 30 either way (the faint edge-tissue map reads ~5.6x with the current baseline);
    # the bug's exp(logit) factor puts a confident tumour patch (logit ≥ 5) at ≥ 150x.
    probability = float(explainer.model(patches[:1])[0, 0])
    assert probability > 150 / 151  # exp(logit) of the tumour patch > 150 (float32 may round it to 1)
    assert (plus < 30 * plain).all() and (plus > plain / 30).all()


def test_the_top_edge_band_follows_the_tissue_and_is_faint(explainer):
    patch = read(EDGE_TISSUE)
    rows = patch.mean(axis=(1, 2))
    assert rows[:16].mean() < rows[48:].mean() - 20  # tissue at the top, background below
    upright, flipped = explainer.explain(np.stack([patch, patch[::-1].copy()]), "gradcam")[2][:, :, 48]
    # the band moves with the tissue: its peak and its centre in the top third, then in the bottom third
    # (the bundled model reads centres 20.8 and 78.9: the network is not exactly flip-equivariant)
    assert upright.argmax() < 32 and centre_row(upright) < 32
    assert flipped.argmax() >= 64 and centre_row(flipped) >= 64
    explanation = explainer.explain(patch, "gradcam")
    assert explanation.relative_strengths() < 0.25 and explanation.heatmaps.max() < 0.25


@pytest.mark.parametrize("grey", [255, 235])
def test_a_uniform_patch_gets_no_edge_band_from_padding(explainer, grey):
    """Zero padding makes the model see a dark frame round a white patch; the tumour-score map of
    a uniform patch is still empty, so edge bands on real patches come from their content."""
    uniform = np.full((96, 96, 3), grey, dtype=np.uint8)
    assert not explainer.explain(uniform, "gradcam").raw.any()


@pytest.mark.parametrize("cell", [(1, 1), (2, 3), (4, 2), (3, 4)])
def test_one_hot_conv_cell_lands_centred_in_its_16px_block(cell):
    grid = np.zeros((1, 6, 6), dtype=np.float32)
    grid[(0, *cell)] = 1.0
    heatmap = resize_to_patch(grid)[0]
    rows, cols = np.mgrid[0:96, 0:96]
    centre = (heatmap * rows).sum() / heatmap.sum(), (heatmap * cols).sum() / heatmap.sum()
    expected = (16 * cell[0] + 7.5, 16 * cell[1] + 7.5)  # the middle of pixels 16i .. 16i + 15
    np.testing.assert_allclose(centre, expected, atol=1e-3)
    block = heatmap[16 * cell[0] : 16 * cell[0] + 16, 16 * cell[1] : 16 * cell[1] + 16]
    assert block.sum() > 0.5 * heatmap.sum()
    # tf-keras-vis's own corner-aligned zoom would put it off centre, pulled towards the middle.
    corner_aligned = zoom(grid[0], 16, order=1)
    off = (corner_aligned * rows).sum() / corner_aligned.sum()
    assert abs(off - expected[0]) > 1


def test_without_reference_patches_the_shared_scale_falls_back_to_own_and_says_so():
    from core.model.architectures import build_model

    model = build_model("tiny", seed=0)
    explainer = Explainer(model, reference_patches=np.zeros((0, 96, 96, 3), dtype=np.uint8))
    explanation = explainer.explain(read(TUMOUR), "gradcam")
    assert explanation.scale == "own" and explanation.references is None


def test_colour_bar_runs_from_the_first_to_the_last_colour_with_its_labels():
    bar = labelled_colour_bar("viridis", "0", "0.5 or more", width=192)
    assert bar.shape == (COLOUR_BAR_HEIGHT + LABEL_BAND_HEIGHT, 192, 3) and bar.dtype == np.uint8
    table = colormap_table("viridis")
    assert bar[0, 0].tolist() == table[0].tolist() and bar[0, -1].tolist() == table[-1].tolist()
    labels = bar[COLOUR_BAR_HEIGHT:]
    assert (labels[:, :20] < 128).any() and (labels[:, -60:] < 128).any()  # text at both ends


def test_scale_words_give_the_reference_and_the_strength(explainer):
    explanation = explainer.explain(read(TUMOUR), "gradcam")
    reference = float(explanation.references)
    assert scale_labels(explanation) == ("0", f"{reference:.3g} or more")
    assert f"tumour score {reference:.3g}" in describe_scale(explanation, "Grad-CAM")
    assert describe_strength(0.1, 0.4) == "strength 0.1 (25% of the reference)"
    assert describe_strength(0.1, None) == "strength 0.1"
