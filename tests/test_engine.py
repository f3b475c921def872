"""The job engine (core.jobs) on a real in-process Dask LocalCluster of two worker processes: the CLI's
--scheduler gives the local results without importing TensorFlow, a page's jobs run on the shared
cluster, a killed worker's prediction is rerun to the same result, a killed worker's training reads
failed with its checkpoint kept, and Stop works on a running and on a queued job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from page_helpers import wait_for_job_end
from region_images import mosaic, write_png

from core.constants import PCAM_MPP
from core.data.dataset import open_dataset
from core.jobs import engine
from core.settings import PROJECT_DIR, SAMPLE_DATASET

ENDED = ("finished", "failed", "stopped")


@pytest.fixture(scope="module")
def tiny(tiny_kaggle_model):
    data, model = tiny_kaggle_model(5)
    return model, data


def worker_pids(cluster) -> set[int]:
    return set(engine.client().run(os.getpid).values())


def wait(predicate, timeout: float = 300.0, interval: float = 0.2):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_predict_with_scheduler_writes_the_local_csv_and_the_client_never_imports_tensorflow(
    engine_cluster, tiny, tmp_path, run_cli
):
    model, data = tiny
    code, local_out, _ = run_cli("predict", model, data, "--out", tmp_path / "local.csv")
    assert code == 0
    client = (
        "import sys; from core.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(code)"
    )
    argv = [
        "predict",
        str(model),
        str(data),
        "--out",
        "remote.csv",
        "--scheduler",
        engine_cluster.scheduler_address,
    ]
    result = subprocess.run([sys.executable, "-c", client, *argv], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "tensorflow imported: False"
    assert result.stdout.splitlines()[:-1] == local_out.splitlines()
    assert (tmp_path / "remote.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_heatmap_with_scheduler_gives_the_local_arrays(engine_cluster, tiny, tmp_path, run_cli):
    from core.region.outputs import read_outputs

    model, _ = tiny
    image = write_png(tmp_path / "mosaic.png", mosaic().pixels)
    common = ["heatmap", model, image, "--stride", "96", "--mpp", repr(PCAM_MPP)]
    assert run_cli(*common, "--out", tmp_path / "local")[0] == 0
    code, out, _ = run_cli(
        *common, "--out", tmp_path / "remote", "--scheduler", engine_cluster.scheduler_address
    )
    assert code == 0 and "tiles scored" in out
    local, remote = read_outputs(tmp_path / "local"), read_outputs(tmp_path / "remote")
    np.testing.assert_array_equal(remote["probabilities"], local["probabilities"])
    np.testing.assert_array_equal(remote["quality"], local["quality"])


def test_a_page_job_runs_on_the_shared_cluster_and_a_reload_finds_it(engine_cluster, workspace, tiny):
    from core.evaluate.jobs import job_dir, launch, read_job

    model, data = tiny
    key = launch(model, open_dataset(data))
    job = wait_for_job_end(read_job, key)
    assert job["state"] == "finished", (job_dir(key) / "job.log").read_text()[-2000:]
    assert job["pid"] in worker_pids(engine_cluster)  # it ran in one of the cluster's workers
    reread = subprocess.run(  # a reload, or another server process: the status is read from the folder
        [sys.executable, "-c", f"from core.evaluate.jobs import read_job; print(read_job({key!r})['state'])"],
        capture_output=True, text=True, cwd=PROJECT_DIR, env={**os.environ}, timeout=600,
    )  # fmt: skip
    assert reread.stdout.strip() == "finished", reread.stderr


def test_stop_ends_a_running_job_and_cancels_a_queued_one(engine_cluster, workspace, tiny, tmp_path):
    from core.evaluate.jobs import launch, read_job, stop_job
    from core.evaluate.predictions import default_prediction_cache_dir

    model, _ = tiny
    copies = []
    for name in ("a", "b", "c"):  # three datasets: two keep both workers busy, the third waits
        (tmp_path / name).mkdir()
        subprocess.run(["cp", "-r", str(SAMPLE_DATASET / "train"), str(SAMPLE_DATASET / "train_labels.csv"),
                        str(tmp_path / name)], check=True)  # fmt: skip
        copies.append(open_dataset(tmp_path / name))
    keys = [launch(model, dataset) for dataset in copies[:2]]
    wait(
        lambda: all(read_job(key)["state"] == "running" for key in keys), timeout=900
    )  # a worker may be re-importing TensorFlow
    queued = launch(model, copies[2])
    assert read_job(queued)["state"] == "queued"
    stop_job(queued)
    assert read_job(queued)["state"] == "stopped"
    for key in keys:
        stop_job(key)
    for key in keys:
        job = wait_for_job_end(read_job, key)
        assert job["state"] == "stopped" and not job.get("error")
    assert not engine.pending(default_prediction_cache_dir() / "jobs" / queued)
    assert read_job(queued)["state"] == "stopped"
    assert not any((default_prediction_cache_dir() / f"{key}.csv").exists() for key in [*keys, queued])


def test_a_worker_killed_mid_prediction_is_rerun_to_the_same_result(engine_cluster, workspace, tiny, run_cli):
    from core.evaluate.jobs import job_dir, launch, read_job
    from core.evaluate.predictions import default_prediction_cache_dir, read_predictions

    model, _ = tiny
    dataset = open_dataset(SAMPLE_DATASET)  # 1,000 real patches: long enough to be caught midway
    key = launch(model, dataset)
    running = wait(
        lambda: (job := read_job(key)) and job["state"] == "running" and (job.get("done") or 0) > 0 and job
    )
    assert running["done"] < running["total"], "the job ended before the worker could be killed"
    os.kill(running["pid"], signal.SIGKILL)  # the worker process running it
    job = wait_for_job_end(read_job, key)
    assert job["state"] == "finished", (job_dir(key) / "job.log").read_text()[-2000:]
    assert job["pid"] != running["pid"]  # rerun by another worker
    code, _, _ = run_cli("predict", model, SAMPLE_DATASET, "--out", workspace / "local.csv")
    local = pd.read_csv(workspace / "local.csv")
    rerun = read_predictions(default_prediction_cache_dir() / f"{key}.csv")
    assert code == 0 and rerun["id"].tolist() == local["id"].tolist()
    np.testing.assert_allclose(rerun["prob"].to_numpy(), local["label"].to_numpy(), atol=1e-6)


def test_a_worker_killed_mid_training_leaves_the_run_failed_with_its_checkpoint(
    engine_cluster, workspace, tiny
):
    from core.model.io import load_model
    from core.train.job import TrainConfig, launch
    from core.train.runs import read_metrics, read_status

    _, data = tiny
    run = launch(TrainConfig(data=[str(data)], architecture="tiny", epochs=500, batch_size=8, seed=2))
    wait(
        lambda: sum(r["kind"] == "epoch" for r in read_metrics(run)) >= 2
    )  # the first epoch's checkpoint is on disk
    pid = read_status(run)["pid"]
    assert pid in worker_pids(engine_cluster)
    os.kill(pid, signal.SIGKILL)
    status = wait(lambda: (s := read_status(run))["state"] == "failed" and s)
    assert "died" in status["error"] and "checkpoint" in status["error"]
    assert load_model(run / "best.keras").output_shape == (None, 1)
    wait(lambda: not engine.pending(run))  # Dask reran the task: it refused to train again
    assert "not run again" in (run / "train.log").read_text()
    assert read_status(run)["state"] == "failed"


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tiny, tmp_path, run_cli, monkeypatch):
    model, data = tiny
    monkeypatch.setattr("core.cli.remote.CONNECT_TIMEOUT", "1s")  # the words, not the 10 s of retries
    code, _, err = run_cli(
        "predict", model, data, "--out", tmp_path / "p.csv", "--scheduler", "tcp://127.0.0.1:9"
    )
    assert code == 2 and err.startswith("error: the Dask scheduler at tcp://127.0.0.1:9 cannot be reached")
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()


def test_a_heatmap_started_on_the_region_page_runs_on_the_shared_cluster(engine_cluster, workspace, tiny):
    from page_helpers import open_page

    from core.constants import DEFAULT_THRESHOLD
    from core.region.jobs import job_dir, job_key, read_job

    model, _ = tiny
    workspace.mkdir(parents=True, exist_ok=True)
    path = write_png(workspace / "mosaic.png", mosaic().pixels)
    at = open_page(workspace, "region", model=model)
    at.text_input(key="region_path").input(str(path)).run()
    at.number_input(key="region_mpp").set_value(PCAM_MPP).run()
    at.button(key="region_start").click().run()
    assert not at.exception, at.exception
    key = job_key(model, path, stride=96, mpp=PCAM_MPP, threshold=DEFAULT_THRESHOLD)  # the page's defaults
    job = wait_for_job_end(read_job, key)
    assert job["state"] == "finished", (job_dir(key) / "job.log").read_text()[-2000:]
    assert job["pid"] in worker_pids(engine_cluster)
    at.run()  # what a rerun of the page (or a reload) draws from the job's folder
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1


def test_an_idle_local_engine_runs_no_profiler_and_ticks_once_a_second(engine_cluster):
    """engine.local_cluster (the app's embedded engine, and this suite's shared cluster) is QUIET: no
    statistical profiler sampling the workers' threads and a 1 s event-loop watchdog, in the workers
    and in the scheduler. Dask's defaults (a 10 ms profiler, a 20 ms tick) cost an idle 2-worker
    engine about 15 % of a core on a shared server."""

    def shape(dask_worker) -> tuple[bool, float]:
        return "profile" in dask_worker.periodic_callbacks, dask_worker.periodic_callbacks[
            "tick"
        ].callback_time

    assert set(engine.client().run(shape).values()) == {(False, 1000.0)}
    assert engine_cluster.scheduler.periodic_callbacks["tick"].callback_time == 1000.0


def _malloc_trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_the_local_engines_workers_keep_glibcs_own_memory_thresholds(engine_cluster):
    """Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's mmap threshold at
    128 KiB: each batch's tensors are mapped and unmapped again, and a warm worker's `predict` of 2,907
    patches took 10.3-12.5 s against 8.7-9.7 s with glibc's defaults. engine.local_cluster leaves it
    out, also for a worker its nanny restarts (the nanny keeps the environment it was made with)."""
    assert set(engine.client().run(_malloc_trim_threshold).values()) == {None}
    assert all(
        nanny.pre_spawn_env.get("MALLOC_TRIM_THRESHOLD_") is None for nanny in engine_cluster.workers.values()
    )


def _start(command: list[str], cwd, env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def test_a_scheduler_started_without_patchlens_runs_its_deferred_tasks(tmp_path):
    """`dask scheduler` from Dask's own command line, started where PatchLens cannot be imported, and a
    `dask worker` that can import it. A task submitted as engine.deferred runs; the same call submitted
    plainly fails at the scheduler (it unpickles every task), so the first is not luck."""
    import pickle

    from distributed import Client

    from core.files import read_json
    from core.jobs.engine import deferred

    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    scheduler_file = tmp_path / "scheduler.json"
    processes = [
        _start([sys.executable, "-m", "distributed.cli.dask_scheduler",
                "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                "--scheduler-file", str(scheduler_file)], tmp_path, bare),
        _start([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1"], tmp_path,
               {**bare, "PYTHONPATH": str(PROJECT_DIR)}),
    ]  # fmt: skip
    try:
        wait(scheduler_file.exists, timeout=60)
        (tmp_path / "facts.json").write_text('{"answer": 42}')
        with Client(scheduler_file=str(scheduler_file), timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
            task = deferred(read_json, tmp_path / "facts.json")
            assert client.submit(pickle.loads, task, pure=False).result(timeout=60) == {"answer": 42}
            with pytest.raises(Exception, match="deserializ"):
                client.submit(read_json, tmp_path / "facts.json", pure=False).result(timeout=60)
    finally:
        for process in processes:
            process.kill()
            process.wait()
