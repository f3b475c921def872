"""AppTest of the Predict page with a tiny real model: a real TIFF, a PNG of a real patch and a
broken file give two probabilities with overlays and one clear error; many files paginate; the
heatmaps come with a colour bar and a caption that says how they are scaled and how strong each is;
a truncated file is called truncated, with its name said once."""

from __future__ import annotations

from page_helpers import png_bytes

from core.data.images import decode_patch
from core.settings import SAMPLE_DATASET

TIFFS = sorted((SAMPLE_DATASET / "train").glob("*.tif"))
BLANK = "96974eeef9a45bdc6335734620d6c60620a633f0"  # a near-blank real patch (white background)


def test_two_good_files_and_one_broken_file(predict_page):
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value([
        (TIFFS[0].name, TIFFS[0].read_bytes(), "image/tiff"),
        ("real_patch.png", png_bytes(decode_patch(TIFFS[1])), "image/png"),
        ("broken.tif", b"this is not an image, just text bytes", "image/tiff"),
    ]).run()  # fmt: skip
    assert not at.exception, at.exception
    assert len(at.error) == 1
    assert "broken.tif" in at.error[0].value and "not a readable image" in at.error[0].value

    results = at.dataframe[0].value
    assert "problem" not in results  # each reason is in its error above; the CSV keeps it
    scored = results[results["quality"] != "not readable (see above)"]
    assert scored["file"].tolist() == [TIFFS[0].name, "real_patch.png"]
    assert scored["probability"].between(0, 1).all()
    assert set(scored["call"]) <= {"tumour", "normal"}
    assert results.loc[results["file"] == "broken.tif", "probability"].isna().all()
    assert len(at.get("image")) == 1 + 4  # the colour bar, then each good patch: original + overlay
    assert at.get("download_button"), "the CSV export is offered"

    at.slider(key="threshold_slider").set_value(0.0).run()  # everything is tumour at 0
    assert set(at.dataframe[0].value.dropna(subset=["probability"])["call"]) == {"tumour"}


def test_many_files_are_paginated(predict_page):
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(
        [(path.name, path.read_bytes(), "image/tiff") for path in TIFFS[:10]]
    ).run()
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == 10
    assert len(at.get("image")) == 1 + 2 * 8
    at.number_input(key="predict_page").set_value(2).run()
    assert not at.exception
    assert len(at.get("image")) == 1 + 2 * 2


def image_captions(at) -> list[str]:
    return [image.caption for element in at.get("image") for image in element.proto.imgs]


def test_heatmaps_come_with_a_colour_bar_and_say_how_they_are_scaled(predict_page):
    at = predict_page
    blank = SAMPLE_DATASET / "train" / f"{BLANK}.tif"
    at.file_uploader(key="predict_uploads").set_value([(blank.name, blank.read_bytes(), "image/tiff")]).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="predict-scale").value == "shared"
    captions = " ".join(caption.value for caption in at.caption)
    assert "Shared scale" in captions and "tumour score" in captions
    assert len(at.get("image")) == 1 + 2  # the colour bar, the patch, its overlay
    overlay_caption = image_captions(at)[-1]
    assert overlay_caption.startswith("Grad-CAM, strength ") and "% of the reference" in overlay_caption

    at.selectbox(key="predict-scale").set_value("own").run()
    assert not at.exception
    captions = " ".join(caption.value for caption in at.caption)
    assert "stretched to its own range" in captions and "Shared scale" not in captions
    assert len(at.get("image")) == 1 + 2
    assert "% of the reference" not in image_captions(at)[-1]


def test_a_truncated_file_is_named_once_and_called_truncated(predict_page):
    at = predict_page
    whole = TIFFS[0].read_bytes()
    at.file_uploader(key="predict_uploads").set_value([
        (TIFFS[1].name, TIFFS[1].read_bytes(), "image/tiff"),
        ("truncated.tif", whole[: len(whole) // 3], "image/tiff"),
    ]).run()  # fmt: skip
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.count("truncated.tif") == 1
    assert "bytes not processed" not in message
    assert f"the file is truncated: it ends after {len(whole) // 3:,} of the {len(whole):,} bytes" in message
    assert (
        at.dataframe[0].value.set_index("file").loc["truncated.tif", "quality"] == "not readable (see above)"
    )


def reload_of(at, page_model):
    """A new session of the Predict page with `at`'s URL: what a reload or a copied link opens (the tiny
    model is set as the session's, since a link only names the baseline or a workspace run)."""
    from page_helpers import PAGE_SCRIPTS, app_test

    reloaded = app_test()
    reloaded.session_state["model_path"] = str(page_model)
    reloaded.query_params.update({key: at.query_params[key] for key in at.query_params})
    reloaded.run()
    reloaded.switch_page(PAGE_SCRIPTS["predict"]).run()
    assert not reloaded.exception, reloaded.exception
    return reloaded


def test_a_reload_shows_the_last_batch_again_until_the_files_are_removed(predict_page, page_model):
    """Issue 19 item 6: uploads used to be gone after a reload; the batch is kept in the workspace by
    content and named in the URL, with its gallery page."""
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(
        [(path.name, path.read_bytes(), "image/tiff") for path in TIFFS[:10]]
    ).run()
    at.number_input(key="predict_page").set_value(2).run()
    assert any("a reload or a copied link shows these results again" in c.value for c in at.caption)
    results = at.dataframe[0].value
    assert at.query_params["predict_page"] == "2" and len(at.query_params["predict_batch"]) == 20

    reloaded = reload_of(at, page_model)
    assert any("The 10 patches of this link, kept in the workspace" in i.value for i in reloaded.info)
    again = reloaded.dataframe[0].value
    assert again["file"].tolist() == results["file"].tolist()
    assert again["probability"].tolist() == results["probability"].tolist()
    assert reloaded.number_input(key="predict_page").value == 2
    assert len(reloaded.get("image")) == 1 + 2 * 2  # the second page's two patches

    at.file_uploader(key="predict_uploads").set_value([]).run()  # the user removes the files
    assert "predict_batch" not in at.query_params
    assert any("Drop patches above" in i.value for i in at.info)


def test_a_link_to_a_batch_that_is_gone_says_so(predict_page, page_model):
    predict_page.query_params["predict_batch"] = "0" * 20
    reloaded = reload_of(predict_page, page_model)
    assert any("no longer kept" in w.value for w in reloaded.warning)
    assert "predict_batch" not in reloaded.query_params
