"""User-supplied text is shown literally, never as markdown: a link's query parameters, a typed path, an
upload's file name and a dataset's folder name reach PatchLens's own message boxes as plain characters,
not as a link or an image (issue 24.4), and an invalid `?threshold=` is said in words (24.6).

What each box will render is checked by rendering its markdown body with markdown-it (CommonMark, what
Streamlit's renderer builds on); tests/test_browser_hostile_links.py checks the real page in Chromium,
GitHub-flavoured autolinks included. AppTest of the real app with the bundled baseline (no TensorFlow).
"""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt
from page_helpers import PAGE_SCRIPTS, app_test, copy_kaggle_subset

from core.settings import SAMPLE_DATASET
from ui.shared import DATASET_KEY
from ui.text import WORD_JOINER, md_code, md_escape

LINK = "[Session expired](https://evil.example/login)"
IMAGE = "![x](http://host/p.png)"
HOSTILE = [
    LINK,
    IMAGE,
    "<https://evil.example>",
    '<img src="http://host/p.png">',
    "**bold** _it_ `code` ~~gone~~ $x^2$ :red[red] &lt;",
    "# heading",
    "1. item",
    "- item",
    "line\n\n# injected heading",
    "[a]: https://evil.example\n[a]",
    "back\\[slash](https://evil.example)",
    "www.evil.example mail@evil.example HTTPS://evil.example",
]
RENDER = MarkdownIt("commonmark")


def rendered(body: str) -> str:
    """The HTML of markdown `body`, without the invisible word joiners md_escape puts in autolinks."""
    return RENDER.render(body).replace(WORD_JOINER, "")


def assert_inert(body: str) -> None:
    """The markdown `body` renders no link, no image, no raw HTML, no heading and no list."""
    html = rendered(body)
    for tag in ("<a ", "<img", "<h1", "<ul", "<ol", "<strong", "<em", "<code", "<script"):
        assert tag not in html, (body, html)


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_its_own_characters(text):
    escaped = md_escape(text)
    assert_inert(escaped)
    shown = rendered(escaped).removeprefix("<p>").removesuffix("</p>\n")
    expected = " ".join(text.splitlines())
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        expected = expected.replace(char, entity)
    assert shown == expected


def test_autolinks_are_broken_by_an_invisible_word_joiner():
    escaped = md_escape("https://evil.example www.evil.example mail@evil.example")
    assert escaped.count(WORD_JOINER) == 3
    assert "https\\:\u2060//" in escaped and "www\u2060." in escaped and "\\@\u2060evil" in escaped


def test_escaping_leaves_plain_names_alone():
    for text in ("kaggle-small", "PATCHLENS_DATA_ROOTS", "run 20261206-010000-patchnet", "Broken: x.tif"):
        assert md_escape(text) == text


@pytest.mark.parametrize("text", ["plain", "a`b", "``x``", "`[x](https://evil.example)`"])
def test_a_code_span_shows_any_backticks_literally(text):
    html = rendered(md_code(text))
    assert html.count("<code>") == 1 and "<a " not in html
    assert html.removeprefix("<p><code>").removesuffix("</code></p>\n").strip() == text.strip()


# --------------------------------------------------------------------------- the pages


def bodies(elements) -> list[str]:
    return [element.value for element in elements]


def assert_all_inert(at) -> None:
    """Every markdown body on the page (messages, captions, markdown, metric values) renders inert
    wherever it quotes hostile text: no link, no image."""
    for kind in ("warning", "error", "info", "success", "caption", "markdown"):
        for body in bodies(at.get(kind)):
            html = rendered(body)
            assert "<a " not in html and "<img" not in html, (kind, body)
    for metric in at.metric:
        html = rendered(str(metric.value))
        assert "<a " not in html and "<img" not in html, metric.value


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(tmp_path / "roots"))
    (tmp_path / "roots").mkdir()
    return tmp_path


def test_a_hostile_link_shows_its_dataset_and_model_literally_in_the_warning(workspace):
    at = app_test()
    at.query_params["dataset"] = LINK
    at.query_params["model"] = IMAGE
    at.run()
    assert not at.exception
    warnings = bodies(at.warning)
    assert len(warnings) == 2
    assert_all_inert(at)
    text = " ".join(rendered(body) for body in warnings)
    assert LINK in text and "![x](http:/host/p.png)" in text  # said, character for character (as a path)
    assert at.session_state[DATASET_KEY] == str(SAMPLE_DATASET)


def test_a_hostile_typed_path_and_root_are_quoted_literally(workspace):
    at = app_test()
    at.run()
    for box, button, text in (("open_path", "Open", LINK), ("new_root", "Add root", IMAGE)):
        at.text_input(key=box).set_value(text)
        next(b for b in at.button if b.label == button).click().run()
        assert not at.exception
        errors = bodies(at.sidebar.error)
        assert len(errors) == 1 and text in rendered(errors[0]), errors
        assert_all_inert(at)


def test_a_hostile_dataset_folder_name_is_shown_literally(workspace):
    hostile = copy_kaggle_subset(workspace / "roots" / "[Session expired](https:evil.example)", 2)
    at = app_test()
    at.query_params["dataset"] = str(hostile)
    at.run()
    assert not at.exception and not at.warning
    assert_all_inert(at)
    assert rendered(at.metric[0].value).strip() == f"<p>{hostile.name}</p>"
    at.switch_page(PAGE_SCRIPTS["dataset"])
    at.run()
    assert not at.exception
    assert_all_inert(at)
    assert any(hostile.name in rendered(body) for body in bodies(at.caption))


def test_an_invalid_threshold_in_the_link_is_said_in_words(workspace):
    at = app_test()
    at.query_params["threshold"] = IMAGE
    at.run()
    at.switch_page(PAGE_SCRIPTS["predict"])
    at.run()
    assert not at.exception
    warnings = [rendered(body) for body in bodies(at.warning)]
    assert any("threshold in the link" in w and IMAGE in w and "using 0.5" in w for w in warnings), warnings
    assert_all_inert(at)
    assert at.slider(key="threshold_slider").value == 0.5
    at.run()
    assert not any("threshold in the link" in body for body in bodies(at.warning))  # said once
    assert "threshold" not in at.query_params  # and the link corrected


@pytest.mark.parametrize("text", ["1.5", "-0.1", "nan", "half"])
def test_any_threshold_outside_0_to_1_gets_the_message(workspace, text):
    at = app_test()
    at.query_params["threshold"] = text
    at.run()
    at.switch_page(PAGE_SCRIPTS["predict"])
    at.run()
    assert any("is not a number between 0 and 1" in body for body in bodies(at.warning))


def test_a_valid_threshold_in_the_link_is_used_without_a_message(workspace):
    at = app_test()
    at.query_params["threshold"] = "0.42"
    at.run()
    at.switch_page(PAGE_SCRIPTS["predict"])
    at.run()
    assert not at.warning and at.slider(key="threshold_slider").value == 0.42


def test_a_hostile_upload_name_is_named_literally_in_its_error(workspace):
    at = app_test()
    at.run()
    at.switch_page(PAGE_SCRIPTS["predict"])
    at.run()
    name = f"{LINK}{IMAGE}.tif"
    at.file_uploader(key="predict_uploads").set_value([(name, b"not an image", "image/tiff")]).run()
    assert not at.exception
    errors = bodies(at.error)
    assert len(errors) == 1
    assert_all_inert(at)
    assert f"<strong>{name}</strong>" in rendered(errors[0])  # bold as before, but every character shown
