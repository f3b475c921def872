"""The sidebar names what the page acts on in the same run, and the URL carries the active dataset
and model across reloads and shared links (AppTest of the real app; no TensorFlow needed).

The second model is a real run directory of the workspace holding a copy of the bundled baseline,
so these tests never load TensorFlow.
"""

from __future__ import annotations

import shutil

import pytest
from page_helpers import PAGE_SCRIPTS, app_test, baseline_run, copy_kaggle_subset

from core.settings import BASELINE_MODEL, SAMPLE_DATASET
from ui.shared import DATASET_KEY, MODEL_KEY

RUN_NAME = "second-model"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A workspace with one finished run, and a data root holding a 12-patch Kaggle folder."""
    home = tmp_path / "home"
    model = baseline_run(home, RUN_NAME)
    roots = tmp_path / "roots"
    data = copy_kaggle_subset(roots / "kaggle-small", 6)
    monkeypatch.setenv("PATCHLENS_HOME", str(home))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(roots))
    return {"data": data, "model": str(model), "roots": roots}


def metric_values(at) -> dict:
    return {m.label: m.value for m in at.metric}


def sidebar_captions(at) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def picker_of(at):
    """The sidebar's model picker (the only selectbox in the sidebar)."""
    return at.sidebar.selectbox[0]


def click(at, label: str):
    return next(b for b in at.button if b.label == label).click().run()


def test_open_names_the_new_dataset_in_the_sidebar_in_the_same_run(env):
    at = app_test()
    at.run()
    assert sidebar_captions(at)[0] == "bundled sample"
    at.text_input(key="open_path").set_value(str(env["data"]))
    click(at, "Open")
    assert not at.exception
    assert sidebar_captions(at)[0] == "kaggle-small"  # the sidebar, drawn first, already knows
    assert metric_values(at)["Active dataset"] == "kaggle-small"  # and the page acts on it
    assert any("Opened" in s.value for s in at.sidebar.success)


def test_a_refused_path_is_explained_in_the_sidebar_and_changes_nothing(env, tmp_path):
    at = app_test()
    at.run()
    at.text_input(key="open_path").set_value(str(tmp_path / "elsewhere"))
    click(at, "Open")
    assert not at.exception
    assert any("outside the data roots" in e.value for e in at.sidebar.error)
    assert sidebar_captions(at)[0] == "bundled sample"


def test_a_model_made_active_by_a_callback_shows_in_the_picker_in_the_same_run(env):
    at = app_test()
    at.run()
    picker = picker_of(at)
    assert picker.value == str(BASELINE_MODEL)
    picker.set_value(str(BASELINE_MODEL)).run()  # the user has touched the picker: it holds a value
    # What the Train page's "Make … the active model" on_click callback does before the script runs:
    at.session_state[MODEL_KEY] = env["model"]
    at.run()
    assert not at.exception
    assert picker_of(at).value == env["model"]
    assert metric_values(at)["Active model"] == RUN_NAME


def test_picking_a_model_in_the_sidebar_is_what_the_page_uses(env):
    at = app_test()
    at.run()
    picker_of(at).set_value(env["model"]).run()
    assert not at.exception
    assert at.session_state[MODEL_KEY] == env["model"]
    assert metric_values(at)["Active model"] == RUN_NAME


def test_adding_a_root_lists_it_in_the_same_run_and_lets_its_datasets_open(env, tmp_path):
    extra = tmp_path / "extra"
    copy_kaggle_subset(extra / "more", 3)
    at = app_test()
    at.run()
    at.text_input(key="new_root").set_value(str(extra))
    click(at, "Add root")
    assert not at.exception
    assert any(str(extra) in c.value for c in at.sidebar.code)
    at.text_input(key="open_path").set_value(str(extra / "more"))
    click(at, "Open")
    assert sidebar_captions(at)[0] == "more"


def test_the_url_restores_the_dataset_and_model_of_a_new_session(env):
    at = app_test()
    at.query_params["dataset"] = str(env["data"])
    at.query_params["model"] = env["model"]
    at.run()
    assert not at.exception and not at.warning
    assert metric_values(at)["Active dataset"] == "kaggle-small"
    assert metric_values(at)["Active model"] == RUN_NAME
    assert picker_of(at).value == env["model"]


def test_a_bad_url_falls_back_to_the_defaults_with_a_message(env, tmp_path):
    outside = copy_kaggle_subset(tmp_path / "outside", 2)
    at = app_test()
    at.query_params["dataset"] = str(outside)
    at.query_params["model"] = "/etc/hostname"
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "dataset in the link cannot be opened" in warnings and "outside the data roots" in warnings
    assert "model in the link cannot be used" in warnings
    assert at.session_state[DATASET_KEY] == str(SAMPLE_DATASET)
    assert at.session_state[MODEL_KEY] == str(BASELINE_MODEL)
    assert "dataset" not in at.query_params and "model" not in at.query_params  # the URL is corrected
    at.run()
    assert not at.warning  # said once


def test_a_model_outside_the_workspace_is_refused_even_if_it_loads(env, tmp_path):
    stray = tmp_path / "stray.keras"
    shutil.copy(BASELINE_MODEL, stray)
    at = app_test()
    at.query_params["model"] = str(stray)
    at.run()
    assert not at.exception
    assert any("neither the bundled baseline nor a run" in w.value for w in at.warning)
    assert at.session_state[MODEL_KEY] == str(BASELINE_MODEL)


def test_the_url_follows_the_sidebar_on_every_page(env):
    at = app_test()
    at.run()
    assert "dataset" not in at.query_params and "model" not in at.query_params  # defaults stay out
    at.text_input(key="open_path").set_value(str(env["data"]))
    click(at, "Open")
    picker_of(at).set_value(env["model"]).run()
    assert at.query_params["dataset"] == str(env["data"])
    assert at.query_params["model"] == env["model"]
    for page in ("dataset", "train", "home"):
        at.query_params.clear()  # what a page switch in the browser may do
        at.switch_page(PAGE_SCRIPTS[page])
        at.run()
        assert not at.exception
        assert at.query_params.get("dataset") == str(env["data"]), page
        assert at.query_params.get("model") == env["model"], page


def test_a_crafted_url_never_raises(env):
    at = app_test()
    at.query_params["dataset"] = str(env["data"]) + "\x00"
    at.query_params["model"] = "../../etc/passwd\x00.keras"
    at.run()
    assert not at.exception
    assert len(at.warning) == 2
    assert at.session_state[DATASET_KEY] == str(SAMPLE_DATASET)


# --------------------------------------------------------------------------- adding data roots from the page


@pytest.fixture()
def listening_on(monkeypatch):
    """Set Streamlit's server.address (what `streamlit run --server.address …` sets) for one test."""
    from streamlit import config

    before = config.get_option("server.address")

    def listen(address: str | None) -> None:
        config.set_option("server.address", address)

    yield listen
    config.set_option("server.address", before)


def roots_expanders(at) -> list:
    return [e for e in at.sidebar.expander if "data roots" in e.label]


def test_on_localhost_the_data_roots_setting_is_offered(env, listening_on, monkeypatch):
    monkeypatch.delenv("PATCHLENS_ROOTS_FROM_UI", raising=False)
    listening_on("localhost")
    at = app_test()
    at.run()
    assert roots_expanders(at) and at.text_input(key="new_root")


@pytest.mark.parametrize("switch, address", [(None, "0.0.0.0"), (None, None), ("0", "localhost")])
def test_where_roots_may_not_be_added_the_setting_is_gone_and_added_roots_count_for_nothing(
    env, tmp_path, listening_on, monkeypatch, switch, address
):
    """A shared server (listening beyond localhost, or PATCHLENS_ROOTS_FROM_UI=0): no expander, and a root
    left in the session from before opens nothing, neither typed, nor in a link, nor as the active dataset."""
    if switch is None:
        monkeypatch.delenv("PATCHLENS_ROOTS_FROM_UI", raising=False)
    else:
        monkeypatch.setenv("PATCHLENS_ROOTS_FROM_UI", switch)
    listening_on(address)
    planted = copy_kaggle_subset(tmp_path / "planted" / "set", 2)
    at = app_test()
    at.query_params["dataset"] = str(planted)
    at.session_state["extra_roots"] = ["/", str(tmp_path / "planted")]
    at.run()
    assert not at.exception and not roots_expanders(at)
    assert not [w for w in at.text_input if w.key == "new_root"]
    assert any("dataset in the link cannot be opened" in w.value for w in at.warning)
    assert at.session_state[DATASET_KEY] == str(SAMPLE_DATASET)
    at.text_input(key="open_path").set_value(str(planted))
    click(at, "Open")
    assert any("outside the data roots" in e.value for e in at.sidebar.error)
    assert sidebar_captions(at)[0] == "bundled sample"
    at.text_input(key="open_path").set_value(str(env["data"]))  # PATCHLENS_DATA_ROOTS still opens
    click(at, "Open")
    assert sidebar_captions(at)[0] == "kaggle-small"
    at.session_state[DATASET_KEY] = str(planted)  # opened from a root before the switch was turned off
    at.run()
    assert at.session_state[DATASET_KEY] == str(SAMPLE_DATASET)
    assert any("active dataset cannot be used any more" in w.value for w in at.warning)


def test_a_bad_roots_switch_is_named_and_keeps_roots_off(env, listening_on, monkeypatch):
    monkeypatch.setenv("PATCHLENS_ROOTS_FROM_UI", "yes")
    listening_on("localhost")
    at = app_test()
    at.run()
    assert not at.exception and not roots_expanders(at)
    assert any("PATCHLENS_ROOTS_FROM_UI must be 1 or 0" in w.value for w in at.sidebar.warning)
