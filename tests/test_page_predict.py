"""AppTest of the Predict page with a tiny real model: a real TIFF, a PNG of a real patch and a
broken file give two probabilities with overlays and one clear error; many files paginate."""

from __future__ import annotations

import io

import pytest
from page_helpers import app_test, tiny_model
from PIL import Image

from core.images import decode_patch
from core.settings import SAMPLE_DATASET

TIFFS = sorted((SAMPLE_DATASET / "train").glob("*.tif"))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("predict") / "tiny.keras")


@pytest.fixture()
def predict(model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    at = app_test()
    at.session_state["model_path"] = str(model_path)
    at.run()
    at.switch_page("app_pages/predict.py")
    at.run()
    assert not at.exception, at.exception
    return at


def png_of(path) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(decode_patch(path)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_two_good_files_and_one_broken_file(predict):
    at = predict
    at.file_uploader(key="predict_uploads").set_value([
        (TIFFS[0].name, TIFFS[0].read_bytes(), "image/tiff"),
        ("real_patch.png", png_of(TIFFS[1]), "image/png"),
        ("broken.tif", b"this is not an image, just text bytes", "image/tiff"),
    ]).run()  # fmt: skip
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "broken.tif" in at.error[0].value and "not a readable image" in at.error[0].value

    results = at.dataframe[0].value
    scored = results[results["problem"] == ""]
    assert scored["file"].tolist() == [TIFFS[0].name, "real_patch.png"]
    assert scored["probability"].between(0, 1).all()
    assert set(scored["call"]) <= {"tumour", "normal"}
    assert results.loc[results["file"] == "broken.tif", "probability"].isna().all()
    assert len(at.get("image")) == 4  # each good patch: original + overlay
    assert at.get("download_button"), "the CSV export is offered"

    at.slider(key="threshold_slider").set_value(0.0).run()  # everything is tumour at 0
    assert set(at.dataframe[0].value.dropna(subset=["probability"])["call"]) == {"tumour"}


def test_many_files_are_paginated(predict):
    at = predict
    at.file_uploader(key="predict_uploads").set_value(
        [(path.name, path.read_bytes(), "image/tiff") for path in TIFFS[:10]]
    ).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 10
    assert len(at.get("image")) == 2 * 8
    at.number_input(key="predict_page").set_value(2).run()
    assert not at.exception
    assert len(at.get("image")) == 2 * 2
