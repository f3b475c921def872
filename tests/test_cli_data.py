"""`python -m core inspect|prepare` as a user runs them: real subprocesses from the project root."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.data.dataset import open_dataset
from core.settings import PROJECT_DIR


def run_core(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI; stdout/stderr decoded but with '\r' kept (text=True would turn it into '\n')."""
    result = subprocess.run(
        [sys.executable, "-m", "core", *map(str, args)], cwd=PROJECT_DIR, capture_output=True, timeout=120
    )
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def test_inspect_json_counts_readable_patches_and_lists_problems(small_kaggle, small_rows):
    broken = small_rows[0][0]
    (small_kaggle / "train" / f"{broken}.tif").write_bytes(b"II*\x00 truncated")
    result = run_core("inspect", small_kaggle, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {
        "layout",
        "n_patches",
        "n_labelled",
        "n_positive",
        "n_negative",
        "problems",
        "quality",
    }
    positives = sum(label for _, label in small_rows[1:])
    assert summary["layout"] == "kaggle"
    assert (summary["n_patches"], summary["n_labelled"]) == (len(small_rows) - 1, len(small_rows) - 1)
    assert (summary["n_positive"], summary["n_negative"]) == (positives, len(small_rows) - 1 - positives)
    assert [p["item"] for p in summary["problems"]] == [broken]


def test_inspect_no_scan_counts_listed_files(small_kaggle, small_rows):
    (small_kaggle / "train" / f"{small_rows[0][0]}.tif").write_text("junk")
    summary = json.loads(run_core("inspect", small_kaggle, "--json", "--no-scan").stdout)
    assert summary["n_patches"] == len(small_rows) and summary["problems"] == []
    assert "quality" not in summary  # nothing decoded, nothing judged


def test_inspect_counts_the_quality_flags(unlabelled_folder_dir):
    from PIL import Image

    from core.data.quality import count_flags, quality_labels

    real = open_dataset(unlabelled_folder_dir)
    expected = count_flags(quality_labels(real.read_batch(range(len(real)))))
    blue = np.zeros((96, 96, 3), dtype=np.uint8)
    blue[..., 2] = 255
    Image.fromarray(blue).save(unlabelled_folder_dir / "blue_square.png")
    Image.fromarray(np.full((96, 96, 3), 238, dtype=np.uint8)).save(unlabelled_folder_dir / "glass.png")

    result = run_core("inspect", unlabelled_folder_dir, "--json")
    assert result.returncode == 0, result.stderr
    quality = json.loads(result.stdout)["quality"]
    assert list(quality) == ["ok", "background", "not_he", "blurred"]
    assert quality == {**expected, "not_he": expected["not_he"] + 1, "background": expected["background"] + 1}
    assert quality["ok"] >= 0.8 * len(real)

    text = run_core("inspect", unlabelled_folder_dir).stdout
    assert f"quality   ok {quality['ok']}" in text and "not_he" in text


def test_inspect_human_summary(pcam_h5_dir):
    result = run_core("inspect", pcam_h5_dir)
    assert result.returncode == 0
    assert "pcam-hdf5" in result.stdout and "tumour" in result.stdout and "problems  0" in result.stdout


@pytest.mark.parametrize("make", ["missing", "empty", "no-header-csv"])
def test_unreadable_dataset_exits_2_with_one_line_and_no_traceback(tmp_path, small_kaggle, make):
    path = {"missing": tmp_path / "absent", "empty": tmp_path / "empty", "no-header-csv": small_kaggle}[make]
    if make == "empty":
        path.mkdir()
    if make == "no-header-csv":
        (small_kaggle / "train_labels.csv").write_text("abc,1\n")
    for command in (["inspect", path], ["prepare", path, "--out", tmp_path / "c.h5"]):
        result = run_core(*command)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_prepare_writes_a_cache_equal_to_the_source(small_kaggle, small_patches, tmp_path):
    out = tmp_path / "out" / "cache.h5"
    result = run_core("prepare", small_kaggle, "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "patches/s" in result.stdout and "wrote 40 patches" in result.stdout
    assert "\r" in result.stderr and "40/40" in result.stderr  # the progress bar
    cache = open_dataset(out)
    np.testing.assert_array_equal(cache.read_batch(range(len(cache))), small_patches)
    assert cache.ids == open_dataset(small_kaggle).ids


def test_data_modules_import_without_tensorflow_or_streamlit():
    code = (
        "import sys, core.data.images, core.data.dataset, core.data.cache, core.cli.data; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'streamlit', 'h5py') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr  # h5py too: loaded only when an .h5 is opened
