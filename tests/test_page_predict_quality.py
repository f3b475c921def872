"""AppTest of the Predict page's input-quality gate with a tiny real model: a real patch, a solid blue
square, a crop of a cat photo, a blurred real patch and a near-blank real patch are uploaded through
the file uploader. The real patch gets its call and no badge; the others keep their probability but
get a badge per flag in words, a greyed call that says it is not meaningful, a `quality` in the
results table and its CSV, and are counted as flagged, not as calls."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from page_helpers import png_bytes
from PIL import Image, ImageFilter

from core.data.images import decode_patch
from core.data.quality import FLAG_BADGES, NOT_MEANINGFUL
from core.evaluate.uploads import decode_uploads, upload_counts, upload_results
from core.formatting import NAME_IN_TEXT, quality_words, short_name
from core.settings import SAMPLE_DATASET

TIFFS = sorted((SAMPLE_DATASET / "train").glob("*.tif"))
BLANK = SAMPLE_DATASET / "train" / "96974eeef9a45bdc6335734620d6c60620a633f0.tif"  # white background
CAT = Path(__file__).parent / "data" / "non_he" / "chelsea_r40_c60.png"
EXPECTED_QUALITY = {
    TIFFS[0].name: "ok",
    "blue.png": "not_he",
    CAT.name: "not_he",
    "blurred.png": "blurred",
    BLANK.name: "background",
}


def uploads() -> list[tuple[str, bytes, str]]:
    blue = np.zeros((96, 96, 3), dtype=np.uint8)
    blue[..., 2] = 255
    blurred = Image.fromarray(decode_patch(TIFFS[1])).filter(ImageFilter.GaussianBlur(2))
    return [
        (TIFFS[0].name, TIFFS[0].read_bytes(), "image/tiff"),
        ("blue.png", png_bytes(blue), "image/png"),
        (CAT.name, CAT.read_bytes(), "image/png"),
        ("blurred.png", png_bytes(np.asarray(blurred)), "image/png"),
        (BLANK.name, BLANK.read_bytes(), "image/tiff"),
    ]


def patch_texts(at) -> dict[str, list[str]]:
    """{file name: [its result text, then the badges after it]} from the page's markdown, in order."""
    texts: dict[str, list[str]] = {}
    current = None
    for element in at.markdown:
        value = element.value
        header = next(
            (name for name in EXPECTED_QUALITY if value.startswith(f"**{short_name(name, NAME_IN_TEXT)}**")),
            None,
        )
        if header is not None:
            current = header
            texts[current] = [value]
        elif current is not None and "-badge[" in value:
            texts[current].append(value)
    return texts


def metric(at, label: str) -> str:
    return next(card.value for card in at.metric if card.label == label)


def test_flagged_patches_get_badges_no_call_and_are_counted_apart(predict_page):
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(uploads()).run()
    assert not at.exception, at.exception
    assert not at.error

    results = at.dataframe[0].value.set_index("file")
    assert results["quality"].to_dict() == {name: quality_words(q) for name, q in EXPECTED_QUALITY.items()}
    assert results["probability"].between(0, 1).all(), "flagged patches keep their probability"
    assert results.loc[TIFFS[0].name, "call"] in {"tumour", "normal"}
    assert (results.drop(index=TIFFS[0].name)["call"] == "").all(), "no call for a flagged patch"

    texts = patch_texts(at)
    assert set(texts) == set(EXPECTED_QUALITY)
    real_text, *real_badges = texts[TIFFS[0].name]
    assert real_badges == [] and NOT_MEANINGFUL not in real_text
    assert "call at 0.500: **tumour**" in real_text or "call at 0.500: **normal**" in real_text
    for name, flag in EXPECTED_QUALITY.items():
        if flag == "ok":
            continue
        text, *badges = texts[name]
        assert "P(tumour) **" in text, "the probability is still shown"
        assert f"call at 0.500: :gray[{NOT_MEANINGFUL}]" in text
        assert "**tumour**" not in text and "**normal**" not in text
        assert len(badges) == 1 and FLAG_BADGES[flag] in badges[0]
    assert "not an H&E patch — this probability is not meaningful" in " ".join(texts["blue.png"])
    assert "out of focus" in " ".join(texts["blurred.png"])
    assert "mostly background" in " ".join(texts[BLANK.name])
    captions = [caption.value for caption in at.caption]
    assert sum("Not counted as a call" in caption for caption in captions) == 4
    assert len(at.get("progress")) == 1, "only the real patch gets a probability bar"

    assert metric(at, "Scored") == "5"
    assert metric(at, "Flagged") == "4"
    called = int(metric(at, "Called tumour")) + int(metric(at, "Called normal"))
    assert called == 1, "flagged patches are not counted as calls"

    at.slider(key="threshold_slider").set_value(0.0).run()  # every ok patch is tumour at 0...
    assert metric(at, "Called tumour") == "1" and metric(at, "Flagged") == "4"  # ...flagged ones are not


def test_the_csv_says_the_quality_of_each_file():
    batch = decode_uploads([(name, data) for name, data, _ in uploads()] + [("broken.tif", b"not an image")])
    probs = np.linspace(0.1, 0.9, len(batch.names))
    csv = pd.read_csv(
        io.StringIO(upload_results(batch, probs, 0.5).to_csv(index=False)), keep_default_na=False
    )
    assert csv.set_index("file")["quality"].to_dict() == {**EXPECTED_QUALITY, "broken.tif": ""}
    assert upload_counts(upload_results(batch, probs, 0.0)) == {
        "scored": 5,
        "tumour": 1,
        "normal": 0,
        "flagged": 4,
        "unreadable": 1,
    }
