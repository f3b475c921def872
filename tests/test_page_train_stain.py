"""AppTest of stain normalisation on the pages: the Train page offers it (TrainConfig's choices) and a
job started with Macenko delivers a model carrying its normaliser; the Dataset page shows the chosen
patch before and after Macenko and Reinhard, against the active model's reference when it has one."""

from __future__ import annotations

import time

from page_helpers import open_page
from streamlit.testing.v1 import AppTest

from core.data.normalise import META_KEY, StainNormaliser
from core.model.io import read_model_meta, run_model_path
from core.train.config import STAIN_NORMALISATIONS
from core.train.runs import list_runs, read_status

TAB_KEY = "dataset_tab"  # the Dataset page's st.tabs key
STAIN_KEY = "dataset_stain"  # the Dataset page's "Stain normalisation" expander (lazy: drawn when open)


def open_app(small_kaggle, monkeypatch, tmp_path, page: str, model=None) -> AppTest:
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(small_kaggle.parent))
    return open_page(tmp_path / "workspace", page, model=model, dataset=small_kaggle)


def stain_images(at) -> list[str]:
    """Captions of the images in the Dataset page's "Stain normalisation" expander."""
    at.session_state[TAB_KEY] = "Patches"
    at.run()
    expander = next(e for e in at.expander if e.label == "Stain normalisation")
    assert not expander.get("image")  # closed: nothing computed
    at.session_state[STAIN_KEY] = True
    at.run()
    assert not at.exception, at.exception
    expander = next(e for e in at.expander if e.label == "Stain normalisation")
    return [c for image in expander.get("image") for c in image.captions]


def test_the_train_page_offers_stain_normalisation_and_the_model_keeps_it(
    small_kaggle, monkeypatch, tmp_path
):
    at = open_app(small_kaggle, monkeypatch, tmp_path, "train")
    choice = at.selectbox(key="train_stain_norm")
    assert list(choice.options) == list(STAIN_NORMALISATIONS) and choice.value == "none"
    choice.set_value("macenko")
    at.selectbox(key="arch").set_value("tiny")
    at.number_input(key="epochs").set_value(1)
    at.select_slider(key="batch_size").set_value(16)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    (run,) = list_runs()
    deadline = time.time() + 300
    while read_status(run.path)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(1.0)
    assert read_status(run.path)["state"] == "finished", read_status(run.path)
    assert read_model_meta(run_model_path(run.path))[META_KEY]["method"] == "macenko"


def test_the_dataset_page_shows_a_patch_before_and_after(small_kaggle, monkeypatch, tmp_path):
    at = open_app(small_kaggle, monkeypatch, tmp_path, "dataset")
    captions = stain_images(at)
    assert captions[0] == "as stored"
    assert captions[1].startswith("macenko · reference") and captions[2].startswith("reinhard · reference")
    assert all("of this dataset" in c for c in captions[1:])


def test_the_dataset_page_uses_the_active_model_reference(small_kaggle, small_patches, monkeypatch, tmp_path):
    from core.model.architectures import build_model
    from core.model.io import save_model

    normaliser = StainNormaliser("macenko").fit(small_patches[0])  # a reference no dataset sample picks
    path = save_model(
        build_model("tiny", seed=0), tmp_path / "stained.keras", {META_KEY: normaliser.to_meta()}
    )
    at = open_app(small_kaggle, monkeypatch, tmp_path, "dataset", model=path)
    captions = stain_images(at)
    assert captions[1] == "macenko · the active model's reference"
    assert "of this dataset" in captions[2]  # the model has no Reinhard reference
