"""Two local worker processes train one epoch of patchnet together through
MultiWorkerMirroredStrategy, re-estimating its BatchNorm statistics as `fit` does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from core.settings import PROJECT_DIR
from core.train.runs import RUN_FILES


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_on_localhost_train_together_and_only_the_chief_writes(small_kaggle, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir = tmp_path / "run"
    workers = [_start_worker(index, cluster, small_kaggle, run_dir, tmp_path) for index in range(2)]
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        outputs.append(out)
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    _check_only_the_chief_wrote_a_finished_run(run_dir, tmp_path)
    _check_precise_batch_norm_ran_in_the_multiworker_loop(run_dir)


def _start_worker(index: int, cluster: dict, data, run_dir, tmp_path) -> subprocess.Popen:
    """`python -m core train --strategy multiworker` as worker `index` of `cluster`, its own home."""
    env = {
        **os.environ,
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        "PATCHLENS_HOME": str(tmp_path / f"home{index}"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "core",
        "train",
        str(data),
        "--arch",
        "patchnet",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--strategy",
        "multiworker",
        "--out",
        str(run_dir),
        "--quiet",
    ]
    return subprocess.Popen(
        command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _check_only_the_chief_wrote_a_finished_run(run_dir, tmp_path) -> None:
    for name in RUN_FILES:  # everything a finished run leaves
        assert (run_dir / name).is_file(), name
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["strategy"] == "multiworker" and status["replicas"] == 2 and status["global_batch"] == 16
    predictions = (run_dir / "val_predictions.csv").read_text().splitlines()
    assert len(predictions) - 1 == status["n_val"]
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1]
    # the second worker wrote nothing into the chief's workspace lock or run directory
    assert not (tmp_path / "home1" / "runs").exists() or not any((tmp_path / "home1" / "runs").iterdir())


def _check_precise_batch_norm_ran_in_the_multiworker_loop(run_dir) -> None:
    """After 2 steps at momentum 0.99 the first layer's moving variance would still be ~0.98 (from its
    initial 1); re-estimated, it is the variance of the first convolution of 0-1 pixels, far smaller."""
    from core.model.io import load_model
    from core.train.batch_norm import batch_norm_layers

    first = batch_norm_layers(load_model(run_dir))[0]
    assert float(first.moving_variance.numpy().mean()) < 0.5, first.moving_variance.numpy()
