"""Real-browser check of issue 24.4: text from a link, a dataset's folder name or an upload's file name is
shown literally in PatchLens's own boxes — the page holds no <a href="https://evil.example…">, no
<img src="http://host…"> and the browser never requests either host — including GitHub-flavoured
autolinks (www.…, e-mail addresses) that AppTest's markdown bodies cannot show.

One `streamlit run` server (warm-up off: nothing here predicts) whose data root holds a real 4-patch
Kaggle copy in a folder with a hostile name. Screenshots go to test-artifacts/browser/hostile-*.png.
"""

from __future__ import annotations

from urllib.parse import quote, urlparse

import pytest
from browser_helpers import (
    ARTIFACTS,
    SIDEBAR,
    assert_no_exception,
    contexts,
    drawn_metric,
    require_browser,
    serve_app,
    settle,
    shoot,
    wait_title,
)

require_browser()

from page_helpers import copy_kaggle_subset  # noqa: E402

from ui.text import WORD_JOINER  # noqa: E402

LINK = "[Session expired](https://evil.example/login)"
IMAGE = "![x](http://host/p.png)"
FOLDER = "[Session expired](https:evil.example) www.evil.example mail@evil.example"
ATTACKERS = ("evil.example", "host/p.png", "//host")
ATTACKER_HOSTS = {"evil.example", "www.evil.example", "host"}
MESSAGE = '[data-testid="stAlertContainer"]'
APP_BODY = '[data-testid="stApp"]'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = copy_kaggle_subset(root / "data" / FOLDER, 2)
    with serve_app(root, {"PATCHLENS_WARMUP": "0"}, data=data) as served:
        yield served


@pytest.fixture()
def new_page(browser):
    """A page in a fresh session that records every URL the browser requests."""
    with contexts(browser) as make:

        def opened():
            page = make()
            page.requested = []
            page.on("request", lambda request: page.requested.append(request.url))
            return page

        yield opened


def assert_nothing_hostile(page) -> None:
    """No link or image pointing at the attacker's hosts, and no request sent to them."""
    for host in ATTACKERS:
        assert page.locator(f'a[href*="{host}"]').count() == 0, host
        assert page.locator(f'img[src*="{host}"]').count() == 0, host
    assert page.locator(f'{APP_BODY} a[href^="mailto:"]').count() == 0
    assert not {urlparse(url).hostname for url in page.requested} & ATTACKER_HOSTS, page.requested


def shown(locator) -> str:
    """The text of every element `locator` finds, as a reader sees it (the invisible joiners left out)."""
    return " ".join(locator.all_inner_texts()).replace(WORD_JOINER, "")


def visit(page, url: str, title: str) -> None:
    page.goto(url)
    wait_title(page, title)
    settle(page)
    assert_no_exception(page)


def test_a_hostile_link_is_quoted_literally_in_the_warnings(server, new_page):
    page = new_page()
    visit(page, f"{server.url}/?dataset={quote(LINK)}&model={quote(IMAGE)}", "PatchLens")
    shoot(page, ARTIFACTS, "hostile-link")
    messages = shown(page.locator(MESSAGE))
    assert LINK in messages and "![x](http:/host/p.png)" in messages, messages
    assert_nothing_hostile(page)


def test_an_invalid_threshold_is_said_in_words_without_fetching_anything(server, new_page):
    page = new_page()
    visit(page, f"{server.url}/predict?threshold={quote(IMAGE)}", "Predict")
    messages = shown(page.locator(MESSAGE))
    assert f"The threshold in the link ({IMAGE}) is not a number between 0 and 1" in messages, messages
    assert_nothing_hostile(page)


def test_a_hostile_folder_name_shows_as_text_on_home_in_the_sidebar_and_on_the_dataset_page(server, new_page):
    page = new_page()
    visit(page, f"{server.url}/?dataset={quote(str(server.data))}", "PatchLens")
    metric = page.locator('[data-testid="stMetric"]', has_text="Active dataset")
    drawn_metric(page, "Active dataset")  # drawn a moment after the run reports it is over
    assert FOLDER in shown(metric)
    assert FOLDER in shown(page.locator(SIDEBAR))
    assert_nothing_hostile(page)
    visit(page, f"{server.url}/dataset?dataset={quote(str(server.data))}", "Dataset")
    shoot(page, ARTIFACTS, "hostile-folder")
    captions = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]')
    assert f"{FOLDER} — " in shown(captions), shown(captions)
    assert_nothing_hostile(page)


def test_a_hostile_upload_name_is_named_literally(server, new_page):
    page = new_page()
    visit(page, f"{server.url}/predict", "Predict")
    name = "[Session expired](https:evil.example)![x](http:host).tif"
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": name, "mimeType": "image/tiff", "buffer": b"not an image"}]
    )
    page.locator(MESSAGE, has_text="was not scored").wait_for()
    settle(page)
    assert name in shown(page.locator(MESSAGE, has_text="was not scored"))
    assert_nothing_hostile(page)
