"""AppTest of the uncertainty on the pages (issue 23, item 2) with a real tiny model on real patches of
data/sample: Predict's spread per upload with TTA, Evaluate's risk-coverage curve, Mistakes' certainty
filter and the feature map's colour, each from TTA predictions, and a clear note without them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from page_helpers import open_page

from core.data.dataset import open_dataset
from core.data.images import decode_patch
from core.evaluate.interpret import Interpretation
from core.evaluate.uncertainty import NO_SPREAD_NOTE, SPREAD_COLUMN, certain_vs_rest, uncertain_mask
from core.settings import SAMPLE_DATASET


@pytest.fixture(scope="module")
def setup(tiny_kaggle_model, tmp_path_factory):
    """(workspace, data, model, TTA predictions): both prediction caches made before any page opens."""
    from core.evaluate.predictions import cached_predictions

    data, model = tiny_kaggle_model(20)
    workspace = tmp_path_factory.mktemp("uncertainty") / "workspace"
    cache = workspace / "cache" / "predictions"
    cached_predictions(model, open_dataset(data), cache_dir=cache)
    return workspace, data, model, cached_predictions(model, open_dataset(data), tta=True, cache_dir=cache)


@pytest.fixture()
def opened(setup, monkeypatch):
    workspace, data, model, _ = setup
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", str(data.parent))
    return lambda page: open_page(workspace, page, model=model, dataset=data)


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_evaluate_draws_risk_against_coverage_with_tta_only(setup, opened):
    tta = setup[3]
    at = opened("evaluate")
    assert not at.exception and not at.error
    assert "Risk against coverage (uncertainty)" in [s.value for s in at.subheader]
    assert NO_SPREAD_NOTE in captions(at)
    at.checkbox(key="prediction_source_tta").check().run()
    assert not at.exception and not at.error
    assert NO_SPREAD_NOTE not in captions(at)
    summary = certain_vs_rest(tta["label"], tta["prob"], tta[SPREAD_COLUMN])
    text = next(c for c in captions(at) if c.startswith("Certain (spread <"))
    assert f"{summary['n_certain']:,} patches, accuracy {100 * summary['accuracy_certain']:.1f} %" in text
    assert any("Error rate of the patches kept" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_mistakes_filter_by_certainty_from_tta_predictions(setup, opened):
    tta = setup[3]
    at = opened("mistakes")
    assert NO_SPREAD_NOTE in captions(at)  # one view: no filter, a note
    at.checkbox(key="prediction_source_tta").check().run()
    threshold = float(tta["prob"].median())
    at.slider(key="threshold_slider").set_value(threshold).run()
    assert not at.exception and not at.error
    wrong = Interpretation(tta).mistakes(threshold)
    uncertain = set(tta.loc[uncertain_mask(tta[SPREAD_COLUMN]), "id"])
    expected = {"all": len(wrong), "uncertain": int(wrong["id"].isin(uncertain).sum())}
    expected["certain"] = expected["all"] - expected["uncertain"]
    assert expected["all"] > 0
    for choice, count in expected.items():
        at.radio(key="mistakes_certainty").set_value(choice).run()
        assert not at.exception
        assert {m.label: m.value for m in at.metric}["Shown after filters"] == str(count), choice


def test_feature_map_colours_points_by_uncertainty(setup, opened):
    tta = setup[3]
    at = opened("feature_map")
    at.selectbox(key="feature_map_colour").set_value("uncertainty").run()
    assert not at.exception and not at.error
    points = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    by_name = {trace["name"]: len(trace["customdata"]) for trace in points}
    n_uncertain = int(uncertain_mask(tta[SPREAD_COLUMN]).sum())
    assert by_name == {
        name: n for name, n in (("certain", len(tta) - n_uncertain), ("uncertain", n_uncertain)) if n
    }


def test_feature_map_says_when_there_are_no_tta_predictions(setup, opened, tmp_path, monkeypatch):
    _, data, model, _ = setup
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "empty-workspace"))
    at = open_page(tmp_path / "empty-workspace", "feature_map", model=model, dataset=data)
    at.selectbox(key="feature_map_colour").set_value("uncertainty").run()
    assert not at.exception and not at.error
    assert any(c.startswith(NO_SPREAD_NOTE) for c in captions(at))
    points = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [trace["name"] for trace in points] == ["unknown"]


def test_predict_shows_each_uploads_spread_with_tta(predict_page, page_model):
    from core.evaluate.predict import predict_patches_spread
    from core.model.io import load_model

    tiffs = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[:3]
    at = predict_page
    at.file_uploader(key="predict_uploads").set_value(
        [(t.name, t.read_bytes(), "image/tiff") for t in tiffs]
    ).run()
    assert not at.exception
    assert any(c.startswith("Tick test-time augmentation") for c in captions(at))
    at.checkbox(key="predict_tta").check().run()
    assert not at.exception and not at.error
    _, spread = predict_patches_spread(load_model(page_model), np.stack([decode_patch(t) for t in tiffs]))
    shown = [c for c in captions(at) if c.startswith("spread of the 8 views")]
    assert shown == [f"spread of the 8 views: {s:.3f}" for s in spread]
