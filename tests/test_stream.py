"""core.data.stream: the one read-ahead stream of predictions, features and the region heatmap (items in
order, producer errors raised in the consumer, the reader thread ended when the consumer stops early),
and core.formatting.ProgressLine, the one progress line of the command line and training."""

from __future__ import annotations

import io
import threading
from contextlib import closing

import numpy as np
import pytest

from core.data.dataset import open_dataset
from core.data.stream import PREFETCH_BATCHES, read_ahead, read_dataset
from core.formatting import ProgressLine


def _alive(name: str) -> bool:
    return any(thread.name == name and thread.is_alive() for thread in threading.enumerate())


def test_items_arrive_in_order_and_the_reader_runs_at_most_prefetch_ahead():
    produced: list[int] = []

    def items():
        for k in range(10):
            produced.append(k)
            yield k

    with closing(read_ahead(items(), name="test-reader")) as stream:
        first = next(stream)
        threading.Event().wait(0.3)  # let the reader fill the queue
        assert first == 0 and len(produced) <= 1 + PREFETCH_BATCHES + 1  # queued + one waiting to be put
        assert [first, *stream] == list(range(10))
    assert not _alive("test-reader")


def test_an_error_of_the_reader_is_raised_in_the_consumer():
    def items():
        yield 1
        raise OSError("disk gone")

    with closing(read_ahead(items(), name="failing-reader")) as stream:
        assert next(stream) == 1
        with pytest.raises(OSError, match="disk gone"):
            next(stream)
    assert not _alive("failing-reader")


def test_stopping_early_ends_the_reader_thread():
    with closing(read_ahead(iter(range(1_000_000)), name="endless-reader")) as stream:
        assert next(stream) == 0
    assert not _alive("endless-reader")


def test_read_dataset_yields_the_readable_patches_lists_the_others_and_reports_progress(small_kaggle):
    broken = sorted((small_kaggle / "train").iterdir())[3]
    broken.write_bytes(b"not a tiff")
    dataset = open_dataset(small_kaggle)
    seen, calls, skipped = [], [], {}
    progress = lambda done, total: calls.append((done, total))  # noqa: E731
    batches = read_dataset(dataset, 4, skipped=skipped, quality=True, progress=progress)
    with closing(batches):
        for pixels, good, labels in batches:
            assert pixels.shape == (len(good), 96, 96, 3) and pixels.dtype == np.uint8
            assert len(labels) == len(good)
            seen.extend(good)
    total, bad = len(dataset), dataset.ids.index(broken.stem)
    assert seen == [i for i in range(total) if i != bad]
    assert list(skipped) == [broken.stem]
    assert calls[0] == (0, total) and calls[-1] == (total, total)


def test_progress_line_rewrites_one_line_and_ends_it_at_the_total():
    out = io.StringIO()
    line = ProgressLine("predict", stream=out)
    line(0, 2_000)
    line.show("short")
    line(2_000, 2_000)
    text = out.getvalue()
    assert text.startswith("\rpredict 0/2,000 patches (  0.0%)")
    assert "\rshort" + " " * (len("predict 0/2,000 patches (  0.0%)") - 5) in text  # the longer line erased
    assert "predict 2,000/2,000 patches (100.0%)" in text and text.endswith("\n")
    line.finish()  # the line is already ended: nothing more
    assert out.getvalue() == text
