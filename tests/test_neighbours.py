"""Similar patches (core.diagnose.neighbours) and the `neighbours` command: k nearest neighbours in
a real tiny model's feature space, checked against a brute-force numpy ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.data.dataset import open_dataset
from core.diagnose.features import compute_features, patch_features
from core.diagnose.neighbours import NeighbourIndex
from core.errors import DatasetError


@pytest.fixture(scope="module")
def tiny(tiny_kaggle_model):
    """(data, model): 16 real patches and the tiny model fitted on them (shared, read-only)."""
    return tiny_kaggle_model(8)


@pytest.fixture(scope="module")
def found(tiny):
    from core.model.io import load_model

    model = load_model(tiny[1])
    return model, open_dataset(tiny[0]), compute_features(model, open_dataset(tiny[0]))


def brute_force(features: np.ndarray, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.sqrt(((features.astype(np.float64) - vector) ** 2).sum(axis=1))
    order = np.argsort(distances, kind="stable")[:k]
    return order, distances[order]


def test_neighbours_of_a_patch_start_with_itself_and_follow_the_brute_force_ranking(found):
    _, dataset, features = found
    index = NeighbourIndex(features)
    for row in (0, 5, len(features) - 1):
        table = index.by_id(features.ids[row], k=4)
        assert list(table.columns) == ["rank", "id", "distance", "label", "prob"]
        assert table["id"].iloc[0] == features.ids[row] and table["distance"].iloc[0] == 0.0
        order, distances = brute_force(features.features, features.features[row], 5)
        assert set(table["id"]) == {features.ids[i] for i in order}
        np.testing.assert_allclose(table["distance"], distances, atol=1e-4)
        rows = [features.position(i) for i in table["id"]]
        np.testing.assert_array_equal(table["label"], dataset.labels[rows])
        np.testing.assert_allclose(table["prob"], features.probs[rows], atol=1e-7)
    with pytest.raises(DatasetError, match="no patch with id"):
        index.by_id("not-an-id")


def test_an_uploaded_patch_is_queried_by_its_feature_vector(found):
    model, dataset, features = found
    pixels = dataset.read_patch(2)[::-1].copy()  # a flipped copy: a patch the dataset does not hold
    vector, _ = patch_features(model, pixels)
    table = NeighbourIndex(features).by_vector(vector[0], k=3)
    order, distances = brute_force(features.features, vector[0], 3)
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["id"].tolist() == [features.ids[i] for i in order]
    np.testing.assert_allclose(table["distance"], distances, atol=1e-4)
    with pytest.raises(ValueError, match="feature vector"):
        NeighbourIndex(features).by_vector(np.zeros(3))


def test_neighbours_command(tiny, found, tmp_path, monkeypatch, capsys):
    data, model_path = tiny
    _, dataset, features = found
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "home"))
    query = dataset.ids[1]
    assert main(["neighbours", str(model_path), str(data), query, "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    order, distances = brute_force(features.features, features.features[1], 4)
    assert [r["id"] for r in rows][0] == query and {r["id"] for r in rows} == {dataset.ids[i] for i in order}
    np.testing.assert_allclose([r["distance"] for r in rows], distances, atol=1e-4)

    assert main(["neighbours", str(model_path), str(data), query, "-k", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:2] == ["rank", "distance"] and len(printed) == 4 and query in printed[1]

    assert main(["neighbours", str(model_path), str(data), "no-such-id"]) == 2
    assert "no patch with id 'no-such-id'" in capsys.readouterr().err
