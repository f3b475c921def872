"""AppTest of Evaluate and Mistakes on predictions that carry the input-quality gate's flags: a tiny
real model on real sample patches plus made-up non-H&E images (tests/quality_folders.py).

Evaluate shows the headline metrics on all patches and without the flagged ones, and its toggle moves
every panel to the unflagged patches; Mistakes filters by quality and names the flag in its captions."""

from __future__ import annotations

import pytest
from page_helpers import open_page
from quality_folders import CAT, mixed_class_folders

from core.data.quality import OK
from core.evaluate.interpret import Interpretation
from core.evaluate.metrics import confusion_at
from core.evaluate.predictions import (
    ALL_PATCHES,
    HEADLINE_METRICS,
    WITHOUT_FLAGGED,
    labelled_arrays,
    metrics_by_quality,
    with_quality,
)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, page_model):
    """(workspace, dataset folder, model, cached predictions): the prediction cache is filled in
    this process, as the page's background job would, so the pages only read it."""
    from core.data.dataset import open_dataset
    from core.evaluate.predictions import cached_predictions

    root = tmp_path_factory.mktemp("quality_eval")
    data = mixed_class_folders(root / "classes", n_per_class=8)
    model = page_model
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(root / "workspace"))
        predictions = cached_predictions(model, open_dataset(data))
    flagged = set(predictions.loc[predictions["quality"] != OK, "id"])
    assert {"blue", "blank", CAT.stem, "blurred"} <= {i.split("/")[-1].rsplit(".", 1)[0] for i in flagged}
    return root / "workspace", data, model, predictions


def open_on(scored, monkeypatch, page: str):
    workspace, data, model, _ = scored
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    at = open_page(workspace, page, model=model, dataset=data)
    assert not at.error, [e.value for e in at.error]
    return at


def table_with(at, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def confusion_counts(at) -> list[int]:
    table = table_with(at, "TN")
    return [int(table[cell].iloc[0]) for cell in ("TN", "FP", "FN", "TP")]


def test_evaluate_shows_metrics_with_and_without_flagged_patches(scored, monkeypatch):
    *_, predictions = scored
    at = open_on(scored, monkeypatch, "evaluate")
    shown = table_with(at, "Accuracy")
    expected = metrics_by_quality(predictions, 0.5)
    assert list(shown.index) == [ALL_PATCHES, WITHOUT_FLAGGED]
    n_flagged = int((predictions["quality"] != OK).sum())
    assert shown.loc[WITHOUT_FLAGGED, "n"] == len(predictions) - n_flagged
    assert shown.loc[ALL_PATCHES, "n"] == len(predictions)
    for metric, column in zip(
        HEADLINE_METRICS, ("AUC", "Accuracy", "Sensitivity", "Specificity"), strict=True
    ):
        assert shown[column].tolist() == pytest.approx(expected[metric].tolist(), nan_ok=True)
    assert any(f"n flagged left out: {n_flagged}" in m.value for m in at.markdown)


def test_the_toggle_moves_the_confusion_matrix_to_the_unflagged_patches(scored, monkeypatch):
    *_, predictions = scored
    at = open_on(scored, monkeypatch, "evaluate")
    at.slider(key="threshold_slider").set_value(0.0).run()  # every patch called tumour: counts are labels
    (tn, fp), (fn, tp) = confusion_at(*labelled_arrays(predictions), 0.0)
    assert confusion_counts(at) == [tn, fp, fn, tp]

    at.toggle(key="evaluate_leave_out_flagged").set_value(True).run()
    assert not at.exception and not at.error
    ok_rows = with_quality(predictions, OK)
    (tn, fp), (fn, tp) = confusion_at(*labelled_arrays(ok_rows), 0.0)
    assert confusion_counts(at) == [tn, fp, fn, tp]
    assert sum(confusion_counts(at)) == len(ok_rows) < len(predictions)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Accuracy"] == f"{(tp + tn) / len(ok_rows):.3f}"


def test_mistakes_quality_filter_shows_only_flagged_mistakes(scored, monkeypatch):
    *_, predictions = scored
    at = open_on(scored, monkeypatch, "mistakes")
    at.slider(key="threshold_slider").set_value(0.0).run()  # every normal patch is a false positive
    flag = "not_he"  # the solid blue square is a normal patch flagged not_he
    at.selectbox(key="mistakes_quality").set_value(flag).run()
    assert not at.exception and not at.error
    expected = Interpretation(predictions).mistakes(0.0, quality=flag)
    assert len(expected) >= 1 and len(expected) < len(Interpretation(predictions).mistakes(0.0))
    assert {m.label: m.value for m in at.metric}["Shown after filters"] == str(len(expected))
    gallery = [c for image in at.get("image") for c in image.captions if c.startswith(("FP", "FN"))]
    assert len(gallery) == len(expected) and all("not H&E" in c.split(" · ")[-1].split(", ") for c in gallery)
    assert any("**input quality** not H&E" in m.value for m in at.markdown)

    at.selectbox(key="mistakes_quality").set_value(OK).run()
    only_ok = Interpretation(predictions).mistakes(0.0, quality=OK)
    assert {m.label: m.value for m in at.metric}["Shown after filters"] == str(len(only_ok))
