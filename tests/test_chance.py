"""Validation at chance while training is not: the definition on numbers, and a real run whose
validation labels do not match its patches warns in status.json, metrics.jsonl and on the CLI."""

from __future__ import annotations

import json

import pytest

from core.train.chance import CHANCE_AUC_MARGIN, LEARNED_AUC, auc_at_chance, chance_warning


@pytest.mark.parametrize(
    ("auc", "at_chance"),
    [(0.5, True), (0.21, True), (0.0, True), (0.6, True), (0.61, False), (0.87, False), (1.0, False)],
)
def test_an_auc_is_at_chance_up_to_the_margin_above_one_half(auc, at_chance):
    assert CHANCE_AUC_MARGIN == pytest.approx(0.1)
    assert auc_at_chance(auc) is at_chance


@pytest.mark.parametrize("auc", [None, float("nan")])
def test_a_missing_auc_is_not_judged(auc):
    assert auc_at_chance(auc) is False
    assert chance_warning(0.9, auc) is None


def test_the_warning_needs_validation_at_chance_and_training_above_it():
    assert LEARNED_AUC == pytest.approx(0.7)
    assert chance_warning(train_auc=0.85, val_auc=0.5) is not None
    assert chance_warning(train_auc=0.85, val_auc=0.21) is not None  # inverted ranking: no better
    assert chance_warning(train_auc=0.7, val_auc=0.6) is not None  # both bounds included
    assert chance_warning(train_auc=0.69, val_auc=0.5) is None  # nothing learned yet: no contrast
    assert chance_warning(train_auc=0.85, val_auc=0.62) is None  # validation above chance
    assert chance_warning(train_auc=None, val_auc=0.5) is None


def test_the_warning_says_it_in_words_with_the_numbers():
    text = chance_warning(train_auc=0.84, val_auc=0.51, val_accuracy=0.63, majority_rate=0.63)
    assert "Validation is at chance" in text
    assert "validation AUC is 0.51" in text and "training AUC reached 0.84" in text
    assert "accuracy 0.63 vs 0.63 for always answering the larger class" in text


# conftest's shuffled_validation_run: `python -m core train` in this process (core.cli.main), so the warning
# is the CLI's stderr line, not anything of the process boundary; test_batchnorm reads the same run.
def test_a_run_validated_on_shuffled_labels_warns_in_status_metrics_and_on_the_cli(shuffled_validation_run):
    run_dir, code, stderr = shuffled_validation_run
    assert code == 0, stderr[-2000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["warning"].startswith("After epoch 2: Validation is at chance")
    assert f"warning: {status['warning']}" in stderr
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    notes = [r["text"] for r in records if r["kind"] == "note"]
    assert any("Validation is at chance" in note for note in notes)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert max(r["auc"] for r in epochs) >= LEARNED_AUC
    assert all(auc_at_chance(r["val_auc"]) for r in epochs)
