"""How ids and quality labels read on the pages (core.formatting): an id is never shortened into another
valid id (issue 19 item 1), and quality flags read as words (item 11)."""

from __future__ import annotations

import pytest

from core.formatting import ELLIPSIS, quality_words, short_id

PCAM_IDS = [f"test-{k}" for k in (119, 1199, 215, 2152, 251, 2514)]  # the PCam HDF5 ids
KAGGLE_ID = "f38a6374c348f90b587e046aac6079959adf3835"


@pytest.mark.parametrize("limit", [6, 8, 12, 24])
def test_a_shortened_id_never_reads_as_another_id(limit):
    ids = [*PCAM_IDS, KAGGLE_ID, KAGGLE_ID[:20], "patient_004_node_4_x_1234_y_5678"]
    shown = [short_id(item, limit) for item in ids]
    for item, text in zip(ids, shown, strict=True):
        assert text == item or ELLIPSIS in text  # whole, or visibly cut
        assert len(text) <= max(limit, 3)
        assert text not in set(ids) - {item}  # never another patch's id
    assert len(set(shown)) == len(ids) or limit < 12  # distinct ids stay distinct when there is room


def test_ids_that_fit_are_shown_whole_and_long_ones_keep_both_ends():
    assert [short_id(item) for item in PCAM_IDS] == PCAM_IDS  # 'test-2152' is no longer 'test-215'
    cut = short_id(KAGGLE_ID)
    assert cut.startswith(KAGGLE_ID[:8]) and cut.endswith(KAGGLE_ID[-8:]) and ELLIPSIS in cut
    assert short_id(1199) == "1199"  # an integer id (a PCam row) is shown as text


def test_quality_labels_read_as_words():
    assert quality_words("not_he;blurred;out_of_distribution") == "not H&E, blurred, out of distribution"
    assert quality_words("background") == "background"
    assert quality_words("ok") == "ok"
