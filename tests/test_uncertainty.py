"""Uncertainty per prediction (core.evaluate.uncertainty): the spread of the 8 dihedral views, kept by
TTA predictions, their cache and `predict --quality-report`, and the risk-coverage curve.

A real tiny model fitted on real patches of data/sample; each view is made with numpy, independently of
the TTA code, so the spread is checked against its definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.dataset import open_dataset
from core.errors import InputError
from core.evaluate.uncertainty import (
    SPREAD_COLUMN,
    certain_vs_rest,
    certainty_word,
    has_spread,
    risk_at_coverage,
    risk_coverage,
    uncertain_mask,
    view_spread,
)


@pytest.fixture(scope="module")
def data_and_model(tiny_kaggle_model):
    return tiny_kaggle_model(20)


def _numpy_views(patches: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and mirrors of (n, 96, 96, 3) patches, made with numpy."""
    mirrored = patches[:, :, ::-1]
    return [np.rot90(view, k, axes=(1, 2)) for view in (patches, mirrored) for k in range(4)]


def test_tta_predictions_carry_the_spread_of_the_8_views(data_and_model):
    from core.evaluate.predict import predict_dataset, predict_patches, predict_patches_spread
    from core.model.io import load_model

    data, model_path = data_and_model
    model, dataset = load_model(model_path), open_dataset(data)
    frame = predict_dataset(model, dataset, batch_size=16, tta=True)
    patches = dataset.read_batch(range(len(dataset)))
    each_view = np.stack([predict_patches(model, view) for view in _numpy_views(patches)], axis=1)
    np.testing.assert_allclose(frame[SPREAD_COLUMN], each_view.std(axis=1), atol=2e-6)
    assert frame[SPREAD_COLUMN].min() > 5e-5  # the tiny model is not flip-invariant: views disagree
    mean, spread = predict_patches_spread(model, patches[:7])
    np.testing.assert_allclose(mean, predict_patches(model, patches[:7], tta=True), atol=1e-6)
    np.testing.assert_allclose(spread, frame[SPREAD_COLUMN][:7], atol=1e-6)
    assert SPREAD_COLUMN not in predict_dataset(model, dataset, batch_size=16).columns  # one view: none


def test_the_spread_survives_the_prediction_cache(data_and_model, tmp_path):
    from core.evaluate.predictions import cached_predictions

    data, model_path = data_and_model
    dataset = open_dataset(data)
    computed = cached_predictions(model_path, dataset, tta=True, cache_dir=tmp_path)
    read_back = cached_predictions(model_path, dataset, tta=True, cache_dir=tmp_path)
    assert has_spread(computed) and has_spread(read_back)
    np.testing.assert_allclose(read_back[SPREAD_COLUMN], computed[SPREAD_COLUMN], rtol=1e-12)
    assert not has_spread(cached_predictions(model_path, dataset, cache_dir=tmp_path))


def test_the_quality_report_gains_spread_and_certainty_with_tta(data_and_model, run_cli, tmp_path):
    data, model_path = data_and_model
    report = tmp_path / "quality.csv"
    code, _, err = run_cli(
        "predict", model_path, data, "--out", tmp_path / "p.csv", "--quality-report", report, "--tta"
    )
    assert code == 0, err
    assert report.read_text().splitlines()[0] == "id,probability,quality,spread,certainty"
    table = pd.read_csv(report, dtype={"id": str})
    assert set(table["certainty"]) <= {"certain", "uncertain"}
    assert (table["certainty"] == "uncertain").tolist() == uncertain_mask(table["spread"]).tolist()
    code, _, err = run_cli(
        "predict", model_path, data, "--out", tmp_path / "q.csv", "--quality-report", report
    )
    assert code == 0, err
    assert report.read_text().splitlines()[0] == "id,probability,quality"  # one view: no spread


def test_spread_and_certainty_by_definition():
    views = np.array([[0.2] * 8, [0.0, 1.0] * 4, [0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6]])
    np.testing.assert_allclose(view_spread(views), [0.0, 0.5, 0.05])
    assert uncertain_mask([0.0, 0.5, np.nan], cut=0.1).tolist() == [False, True, False]
    assert [certainty_word(s, cut=0.1) for s in (0.01, 0.2, None, np.nan)] == [
        "certain",
        "uncertain",
        "unknown",
        "unknown",
    ]
    with pytest.raises(InputError, match="views"):
        view_spread(np.zeros(8))


def test_risk_coverage_abstains_on_the_largest_spread_first():
    labels = np.array([1, 0, 1, 0, 1, 0])
    probs = np.array([0.9, 0.2, 0.4, 0.7, 0.8, 0.1])  # rows 2 and 3 are wrong at 0.5
    spread = np.array([0.01, 0.02, 0.30, 0.20, 0.02, 0.05])
    curve = risk_coverage(labels, probs, spread)
    assert curve["coverage"].tolist() == pytest.approx(
        [1 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0]
    )  # a tie enters together
    assert curve["risk"].tolist() == pytest.approx([0, 0, 0, 1 / 5, 2 / 6])
    assert risk_at_coverage(curve, 0.6) == 0.0 and risk_at_coverage(curve, 1.0) == pytest.approx(1 / 3)
    summary = certain_vs_rest(labels, probs, spread, cut=0.1)
    assert (summary["n_certain"], summary["n_uncertain"]) == (4, 2)
    assert (summary["accuracy_certain"], summary["accuracy_uncertain"]) == (1.0, 0.0)
    with pytest.raises(InputError, match="spread"):
        risk_coverage(labels, probs, spread[:5])
