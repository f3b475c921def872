"""The Predict page's kept batches (core.evaluate.kept_uploads): stored once per content, read back
whole, the oldest removed beyond KEPT_BATCHES, and a bad or stale key refused with a typed error."""

from __future__ import annotations

import os

import pytest

from core.errors import InputError
from core.evaluate.kept_uploads import KEPT_BATCHES, batches_dir, keep_batch, kept_batch
from core.settings import SAMPLE_DATASET

TIFFS = sorted((SAMPLE_DATASET / "train").glob("*.tif"))


def test_a_batch_is_kept_once_and_read_back_whole(workspace):
    files = [(path.name, path.read_bytes()) for path in TIFFS[:3]] + [("../odd name?.png", b"\x00")]
    key = keep_batch(files)
    assert keep_batch(files) == key and len(list(batches_dir().iterdir())) == 1
    assert kept_batch(key) == files
    assert keep_batch(files[:2]) != key  # other content, another key


def test_only_the_last_batches_stay(workspace):
    keys = []
    for k in range(KEPT_BATCHES + 2):
        keys.append(keep_batch([(f"{k}.tif", TIFFS[k].read_bytes())]))
        os.utime(batches_dir() / f"{keys[-1]}.zip", ns=(k * 10**9, k * 10**9))  # distinct ages
    assert sorted(path.stem for path in batches_dir().iterdir()) == sorted(keys[2:])
    with pytest.raises(InputError, match="no longer kept"):
        kept_batch(keys[0])


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABC", "0" * 19, ""])
def test_a_key_that_is_not_a_batch_key_is_refused(workspace, key):
    with pytest.raises(InputError, match="not one this app made"):
        kept_batch(key)


def test_a_damaged_batch_reads_as_gone(workspace):
    key = keep_batch([("a.tif", TIFFS[0].read_bytes())])
    (batches_dir() / f"{key}.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="no longer kept"):
        kept_batch(key)
