"""The training job end to end on real patches: files, metrics, stop, SIGKILL, lock, bad data."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import numpy as np
import pytest
from page_helpers import copy_kaggle_subset

from core.errors import JobConflictError
from core.train.runs import RUN_FILES, read_metrics, read_status, request_stop

EPOCH_KEYS = {"epoch", "loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc", "lr"}
BATCH_KEYS = {"epoch", "step", "steps", "loss", "accuracy", "patches_per_s", "eta_s"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return copy_kaggle_subset(tmp_path_factory.mktemp("data") / "tiny", 24)


def wait_for(predicate, timeout=120.0, interval=0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def cli_run(tiny_data, tmp_path_factory):
    """One `python -m core train` run (tiny, 2 epochs, seed 7) in its own workspace, that the tests
    below only read: its run directory. In this process (core.cli.main, as `python -m core` runs it):
    the tests that need a process of their own (SIGKILL) start one through the job engine."""
    from core.cli import main

    workspace = tmp_path_factory.mktemp("cli") / "workspace"
    run_dir = workspace / "runs" / "cli"
    arguments = ["--arch", "tiny", "--epochs", "2", "--batch-size", "16", "--val-fraction", "0.25"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATCHLENS_HOME", str(workspace))
        assert main(["train", str(tiny_data), *arguments, "--seed", "7", "--out", str(run_dir)]) == 0
    return run_dir


def epoch_metrics(run_dir) -> list[tuple]:
    return [(r["loss"], r["val_loss"], r["val_auc"]) for r in read_metrics(run_dir) if r["kind"] == "epoch"]


def test_cli_train_leaves_every_file_and_a_model_that_keeps_the_contract(cli_run, tiny_data):
    run_dir = cli_run
    for name in RUN_FILES:  # everything a finished run leaves
        assert (run_dir / name).is_file(), name
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["n_train"] == 36 and status["n_val"] == 12
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is valid JSON
    epochs = [r for r in records if r["kind"] == "epoch"]
    batches = [r for r in records if r["kind"] == "batch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(EPOCH_KEYS <= set(r) for r in epochs)
    assert batches and all(BATCH_KEYS <= set(r) for r in batches)
    predictions = list(csv.DictReader(open(run_dir / "val_predictions.csv")))
    assert len(predictions) == 12 and set(predictions[0]) == {"id", "label", "prob"}
    assert all(0.0 <= float(p["prob"]) <= 1.0 for p in predictions)

    from core.model.io import load_model, read_model_meta

    model = load_model(run_dir)
    patches = np.stack(
        [
            np.asarray(__import__("PIL.Image").Image.open(f))
            for f in sorted((tiny_data / "train").glob("*.tif"))[:5]
        ]
    )
    probs = model.predict(patches.astype("float32"), verbose=0)
    assert probs.shape == (5, 1) and np.all((probs >= 0) & (probs <= 1))
    assert read_model_meta(run_dir / "model.keras")["last_conv_layer"] == "last_conv"


def test_same_seed_same_data_gives_the_same_metrics(cli_run, workspace):
    """The CLI's run again, in this process from its own config.json: the same numbers to the last bit."""
    from core.train.job import TrainConfig, run_training

    config = TrainConfig.from_dict(json.loads((cli_run / "config.json").read_text()))
    assert config.seed == 7
    run_training(config, workspace / "runs" / "again", verbose=False)
    assert epoch_metrics(workspace / "runs" / "again") == epoch_metrics(cli_run)


def test_stop_sigkill_and_the_one_job_lock(tiny_data, workspace):
    from core.train.job import TrainConfig, launch

    config = TrainConfig(data=[str(tiny_data)], architecture="tiny", epochs=500, batch_size=8, seed=1)
    first = launch(config)
    wait_for(lambda: any(r["kind"] == "epoch" for r in read_metrics(first)))
    assert read_status(first)["state"] == "running"

    with pytest.raises(JobConflictError, match=first.name):
        launch(config)

    request_stop(first)
    status = wait_for(lambda: (s := read_status(first))["state"] not in ("queued", "running") and s)
    assert status["state"] == "stopped"
    assert (first / "best.keras").is_file() and (first / "model.keras").is_file()

    second = launch(config)  # the lock was released
    wait_for(lambda: any(r["kind"] == "batch" for r in read_metrics(second)))
    pid = read_status(second)["pid"]
    os.kill(pid, signal.SIGKILL)
    status = wait_for(lambda: (s := read_status(second))["state"] == "failed" and s, timeout=30)
    assert "died" in status["error"]
    third = launch(TrainConfig(data=[str(tiny_data)], architecture="tiny", epochs=1, batch_size=16))
    status = wait_for(
        lambda: (s := read_status(third))["state"] not in ("queued", "running") and s, timeout=180
    )
    assert status["state"] == "finished"


def test_a_corrupt_dataset_ends_failed_with_a_readable_error(tmp_path, workspace, run_cli):
    broken = tmp_path / "broken"
    (broken / "train").mkdir(parents=True)
    with open(broken / "train_labels.csv", "w") as handle:
        handle.write("id,label\n")
        for i in range(6):
            (broken / "train" / f"p{i}.tif").write_text("this is not an image")
            handle.write(f"p{i},{i % 2}\n")
    run_dir = workspace / "runs" / "broken"
    code, _, stderr = run_cli("train", broken, "--arch", "tiny", "--epochs", "1", "--out", run_dir)
    assert code == 2
    assert "Traceback" not in stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["error"] and "Traceback" not in status["error"]


def test_a_killed_run_keeps_a_loadable_checkpoint_and_resumes_from_it(tiny_data, workspace):
    from core.model.io import load_model, read_model_meta
    from core.train.job import TrainConfig, launch, resume_config, run_training

    config = TrainConfig(data=[str(tiny_data)], architecture="tiny", epochs=500, batch_size=8, seed=3)
    killed = launch(config)
    wait_for(lambda: sum(r["kind"] == "epoch" for r in read_metrics(killed)) >= 2)
    os.kill(read_status(killed)["pid"], signal.SIGKILL)
    assert wait_for(lambda: read_status(killed)["state"] == "failed", timeout=30)
    checkpoint = killed / "best.keras"
    assert load_model(checkpoint).output_shape == (None, 1)
    saved_epoch = read_model_meta(checkpoint)["epoch"]
    assert saved_epoch >= 1

    resumed_config = resume_config(killed, epochs=saved_epoch + 2)
    assert resumed_config.resume_from == str(checkpoint)
    status = run_training(resumed_config, workspace / "runs" / "resumed", verbose=False)
    assert status["state"] == "finished"
    epochs = [r["epoch"] for r in read_metrics(workspace / "runs" / "resumed") if r["kind"] == "epoch"]
    assert epochs == [saved_epoch + 1, saved_epoch + 2]


def test_resuming_into_an_incompatible_architecture_is_refused(cli_run, tiny_data, workspace):
    from core.train.job import TrainConfig, run_training

    other = TrainConfig(
        data=[str(tiny_data)], architecture="patchnet", epochs=3, batch_size=16, resume_from=str(cli_run)
    )
    status = run_training(other, workspace / "runs" / "second", verbose=False)
    assert status["state"] == "failed" and "does not match" in status["error"]


@pytest.mark.parametrize(("given", "expected"), [([], 3), (["--epochs", "10"], 10), (["--epochs", "5"], 5)])
def test_resume_takes_epochs_when_given_whatever_the_number(tmp_path, given, expected):
    from core.cli import build_parser
    from core.cli.train import config_from_args
    from core.model.architectures import build_model
    from core.model.io import save_model
    from core.settings import SAMPLE_DATASET
    from core.train.job import TrainConfig
    from core.train.runs import atomic_write_json

    earlier = tmp_path / "earlier"
    save_model(build_model("tiny", seed=0), earlier / "best.keras", {"epoch": 2})
    atomic_write_json(earlier / "config.json", TrainConfig(data=[str(SAMPLE_DATASET)], epochs=3).to_dict())
    args = build_parser().parse_args(["train", "--resume", str(earlier), *given])
    config = config_from_args(args)
    assert config.epochs == expected and config.resume_from == str(earlier / "best.keras")


def test_epochs_default_to_the_configuration_default_without_resume():
    from core.cli import build_parser
    from core.cli.train import config_from_args
    from core.settings import SAMPLE_DATASET
    from core.train.job import TrainConfig

    config = config_from_args(build_parser().parse_args(["train", str(SAMPLE_DATASET)]))
    assert config.epochs == TrainConfig.epochs == 10


def test_a_resumed_run_stopped_mid_epoch_counts_complete_epochs_in_the_original_numbering(cli_run, workspace):
    """Stopped at step 1 of the first epoch it trains: that part-epoch is neither validated nor
    counted; the run says where it stopped, which run it continues, and keeps the original numbering."""
    from core.model.io import read_model_meta
    from core.train.job import resume_config, run_training
    from core.train.runs import summarize_run
    from core.train.views import outcome_words

    saved = read_model_meta(cli_run / "best.keras")["epoch"]
    run_dir = workspace / "runs" / "resumed-stopped"
    run_dir.mkdir(parents=True)
    request_stop(run_dir)  # honoured after the first batch
    status = run_training(resume_config(cli_run, epochs=5), run_dir, verbose=False)

    assert status["state"] == "stopped"
    assert status["stopped_at"] == {"epoch": saved + 1, "step": 1, "steps": 3, "epochs_complete": saved}
    records = read_metrics(run_dir)
    assert not [r for r in records if r["kind"] == "epoch"], "a part-epoch was recorded as an epoch"
    (partial,) = [r for r in records if r["kind"] == "partial_epoch"]
    assert partial["step"] == 1 and not [key for key in partial if key.startswith("val_")]
    words = outcome_words(read_status(run_dir))
    assert f"in epoch {saved + 1} at step 1/3" in words and f"{saved} of 5 epochs complete" in words
    assert f"Resumed from {cli_run.name} at epoch {saved + 1}" in words
    summary = summarize_run(run_dir)
    assert (summary.resumed_from, summary.epochs_done, summary.epochs) == (cli_run.name, saved, 5)
    assert read_model_meta(run_dir / "model.keras")["best_epoch"] == saved  # resumes at the same epoch


def test_the_training_step_is_traced_once_because_its_variables_exist_before_fit(small_patches):
    """core.train.steps.build_training_state: the optimizer's slots and the metrics' variables are made
    before fit, so Keras does not create them inside the first traced step (which TensorFlow then traces
    a second time). Compiled as a run compiles; one real step of the tiny CNN on real patches."""
    import keras
    import tensorflow as tf

    from core.model.architectures import build_model
    from core.train.steps import build_training_state

    model = build_model("tiny", seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    build_training_state(model)
    assert model.optimizer.built and model._compile_metrics.built
    slots = len(model.optimizer.variables)
    traces = []
    step = model.train_step
    model.train_step = lambda data: (traces.append(1), step(data))[1]  # counts the traces, not the steps
    x, y = small_patches[:16].astype("float32"), (np.arange(16) % 2).astype("float32")[:, None]
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=1, verbose=0)
    assert len(traces) == 1, f"the training step was traced {len(traces)} times"
    assert len(model.optimizer.variables) == slots and int(model.optimizer.iterations) == 2
