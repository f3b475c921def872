"""AppTest of the Feature map page (issue 12, items 1 and 2) on real patches and a real tiny model:
features computed once and cached, the scatter's points and colours checked against an independent
forward pass, similar patches checked against a brute-force ranking, and clear messages for an
unlabelled dataset and a broken model file. (The lasso -> gallery flow needs a browser:
tests/test_browser_feature_map.py.)"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from page_helpers import PAGE_SCRIPTS, open_page

from core.data.dataset import open_dataset
from core.diagnose.features import feature_cache_path

N_PER_CLASS = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_kaggle_model):
    """(root, data, model): the session's tiny model on 2 x N_PER_CLASS real patches (read-only) and a
    copy of its data under this module's data root, which a test may add folders next to."""
    root = tmp_path_factory.mktemp("feature-map")
    shared_data, model = tiny_kaggle_model(N_PER_CLASS)
    data = Path(shutil.copytree(shared_data, root / "data" / "subset"))
    return root, data, model


@pytest.fixture()
def page(setup, monkeypatch):
    root, data, model = setup
    monkeypatch.setenv("PATCHLENS_HOME", str(root / "workspace"))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root / "data"))
    return open_page(root / "workspace", "feature_map", model=model, dataset=data)


@functools.cache
def independent(model_path, data):
    """Penultimate features and probabilities by a separate Keras model built here, not by the page
    (once per model and data: both are read-only in this module)."""
    import keras

    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    dataset = open_dataset(data)
    pixels = dataset.read_batch(range(len(dataset))).astype("float32")
    cut = keras.Model(model.input, model.get_layer(index=-3).output)  # GlobalAveragePooling's output
    return dataset, cut.predict(pixels, verbose=0), model.predict(pixels, verbose=0).reshape(-1)


def traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_scatter_of_every_patch_coloured_by_outcome_at_the_threshold(setup, page):
    root, data, model = setup
    at = page
    assert at.title[0].value.endswith("Feature map")
    dataset, _, probs = independent(model, data)
    assert feature_cache_path(model, dataset, root / "workspace" / "cache" / "features").is_file()
    drawn = [i for trace in traces(at) for i in (row[0] for row in trace["customdata"])]
    assert sorted(drawn) == sorted(dataset.ids)  # 20 patches: all drawn, each once
    assert any("All 20 patches" in c.value for c in at.caption)

    threshold = float(np.median(probs))
    at.slider(key="threshold_slider").set_value(threshold).run()
    at.selectbox(key="feature_map_colour").set_value("outcome").run()
    assert not at.exception and not at.error
    correct = (probs >= threshold).astype(int) == dataset.labels
    by_name = {trace["name"]: len(trace["customdata"]) for trace in traces(at)}
    assert by_name.get("correct", 0) == int(correct.sum())
    assert by_name.get("incorrect", 0) == int((~correct).sum())

    at.radio(key="feature_map_method").set_value("tsne").run()  # t-SNE of 20 points: fast
    assert not at.exception and not at.error
    assert sum(len(trace["customdata"]) for trace in traces(at)) == len(dataset)


def test_similar_patches_match_a_brute_force_ranking(setup, page):
    _, data, model = setup
    at = page
    dataset, features, probs = independent(model, data)
    query = dataset.ids[3]
    at.selectbox(key="feature_map_query").set_value(query).run()
    at.number_input(key="feature_map_k").set_value(5).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    distances = np.linalg.norm(features - features[3], axis=1)
    expected = [dataset.ids[i] for i in np.argsort(distances, kind="stable")[:6]]
    assert table["id"].iloc[0] == query and table["distance"].iloc[0] == 0.0
    assert set(table["id"]) == set(expected)
    np.testing.assert_allclose(np.sort(table["distance"]), np.sort(distances)[:6], atol=1e-4)
    np.testing.assert_allclose(table["prob"], probs[[dataset.ids.index(i) for i in table["id"]]], atol=1e-5)
    assert len(at.get("image")) == 6  # the patch and its 5 neighbours


def test_unlabelled_dataset_and_broken_model_get_a_message(setup, tmp_path, monkeypatch):
    root, data, model = setup
    monkeypatch.setenv("PATCHLENS_HOME", str(root / "workspace"))
    unlabelled = root / "data" / "unlabelled"
    unlabelled.mkdir(exist_ok=True)
    for tif in sorted((data / "train").glob("*.tif"))[:4]:
        (unlabelled / tif.name).write_bytes(tif.read_bytes())
    at = open_page(root / "workspace", "feature_map", model=model, dataset=unlabelled)
    assert any("unlabelled" in i.value for i in at.info)
    assert not at.get("plotly_chart")

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    at = open_page(root / "workspace", "feature_map", model=broken)
    assert any("not a Keras model file" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_predict_shows_the_datasets_patches_nearest_to_an_upload(setup, page, monkeypatch):
    """Item 2 from an upload: once the Feature map has cached the features (the `page` fixture), the
    Predict page lists the active dataset's patches nearest to an uploaded patch; an upload of a
    patch of the dataset finds itself first, at distance 0."""
    root, data, model = setup
    at = page
    dataset, features, _ = independent(model, data)
    at.switch_page(PAGE_SCRIPTS["predict"])
    at.run()
    tif = data / "train" / f"{dataset.ids[4]}.tif"
    at.file_uploader(key="predict_uploads").set_value([(tif.name, tif.read_bytes(), "image/tiff")]).run()
    assert not at.exception and not at.error
    at.number_input(key="predict_similar_k").set_value(4).run()
    assert len(at.dataframe) == 2  # the results, then the neighbours
    table = at.dataframe[1].value
    distances = np.linalg.norm(features - features[4], axis=1)
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["id"].iloc[0] == dataset.ids[4] and table["distance"].iloc[0] < 1e-3
    assert set(table["id"]) == {dataset.ids[i] for i in np.argsort(distances)[:4]}

    monkeypatch.setenv("PATCHLENS_HOME", str(root / "empty-workspace"))  # no cached features there
    at.run()
    assert not at.exception
    assert any("open the Feature map page once" in c.value for c in at.caption)
    assert len(at.dataframe) == 1  # the results only


def test_a_large_datasets_features_come_from_a_background_job_a_second_session_finds(
    setup, tmp_path, monkeypatch
):
    from page_helpers import wait_for_job_end

    import core.data.dataset
    from core.diagnose.features import read_features
    from core.evaluate.jobs import job_key, read_job, results_dir

    root, data, model = setup
    workspace = tmp_path / "workspace"
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(root / "data"))
    monkeypatch.setattr(core.data.dataset, "DECODE_AT_OPEN_MAX", 0)  # as if too large to score on opening

    at = open_page(workspace, "feature_map", model=model, dataset=data)
    assert not at.exception and not at.get("plotly_chart")  # nothing computed without a click
    assert any("not computed yet" in i.value for i in at.info)
    at.button(key="feature_map_compute").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # a background job: its progress and a Stop button, or on a warm engine that already finished its
    # 20 patches, its map; its record says it ran as a job either way
    dataset = open_dataset(data)
    key = job_key(model, dataset, features=True)
    assert read_job(key, results_dir(features=True))["state"] in ("queued", "running", "finished")
    assert at.get("plotly_chart") or any(b.key == "stop_prediction_job" for b in at.button)
    second = open_page(workspace, "feature_map", model=model, dataset=data)  # another tab attaches
    # it attaches: the job's progress, or on a warm engine that already finished it, its map; never a
    # second Compute button
    assert "feature_map_compute" not in {b.key for b in second.button}
    assert second.get("progress") or second.get("plotly_chart")

    job = wait_for_job_end(lambda key: read_job(key, results_dir(features=True)), key)
    assert job["state"] == "finished", job
    at.run()
    assert not at.exception and not at.error
    drawn = [i for trace in traces(at) for i in (row[0] for row in trace["customdata"])]
    assert sorted(drawn) == sorted(dataset.ids)
    stored = read_features(feature_cache_path(model, dataset))  # where the in-page path keeps them too
    _, features, probs = independent(model, data)
    order = [stored.ids.index(i) for i in dataset.ids]
    np.testing.assert_allclose(stored.features[order], features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stored.probs[order], probs, rtol=1e-4, atol=1e-5)
