"""Shared fixtures: small datasets of every layout, built in tmp_path from the bundled real patches.

Everything derives from data/sample (1,000 real Kaggle TIFFs + train_labels.csv); nothing here is
synthetic pixels. Dataset fixtures are function-scoped so a test may damage its copy freely; the
session-scoped ones (a tiny fitted model, the sample's rows and pixels) are built once and read-only.
"""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.images import decode_patch
from core.settings import ENGINE_WORKERS_ENV, SAMPLE_DATASET

# One engine worker per embedded cluster in the tests (the app's default is two): the pytest process
# runs its jobs on one until the suite's shared cluster (browser_helpers.shared_cluster) is started, and
# a `cold_engine` test starts one; on two cores a second TensorFlow worker each only adds start-up work.
os.environ.setdefault(ENGINE_WORKERS_ENV, "1")

SMALL_N = 40  # patches per small fixture: enough for both classes, cheap to copy
# baseline_server's data roots: Kaggle-layout folders of real patches, patches per class
BASELINE_SERVER_DATA = {"first": 10, "second": 15, "subset": 10}
BROWSER_GROUP = "test_browser_*.py"  # every real-browser module: one unit of work for pytest-xdist


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items) -> None:
    """Every test of a tests/test_browser_*.py module is a real-browser test: marked `browser`, and
    run first (under pytest-xdist the browser modules are one long unit of work, below)."""
    for item in items:
        if is_browser_test(item):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: not is_browser_test(item))  # a stable sort: the order is kept otherwise


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's units of work, for pytest.ini's `-n 2`: every
    non-browser module is one unit, so its module fixtures are built on one worker only, and all the
    real-browser modules together are one, run one after the other by one worker (each of them keeps
    both cores busy with its server, its engine workers and Chromium) while the other worker runs the
    rest. (xdist's `--dist loadgroup` marks group nothing under pytest 9: xdist 3.8 renames a node
    id that pytest 9 no longer reads, so every test went to any worker.)"""
    from xdist.scheduler import LoadScopeScheduling

    class Modules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return BROWSER_GROUP if is_browser_module(Path(module)) else module

    return Modules(config, log)


def is_browser_test(item) -> bool:
    return is_browser_module(item.path)


def is_browser_module(path: Path) -> bool:
    return path.name.startswith("test_browser_")


def sample_rows() -> list[tuple[str, int]]:
    """(id, label) of the bundled sample, in CSV order."""
    with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
        return [(row["id"], int(row["label"])) for row in csv.DictReader(handle)]


def write_labels_csv(path: Path, rows: list[tuple[str, int]], header: str = "id,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{i},{label}\n" for i, label in rows))
    return path


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The bundled real sample (Kaggle layout). Read-only: copy before changing anything."""
    return SAMPLE_DATASET


@pytest.fixture(scope="session")
def small_rows() -> list[tuple[str, int]]:
    """The first SMALL_N (id, label) rows of the sample: both classes present."""
    rows = sample_rows()[:SMALL_N]
    assert {label for _, label in rows} == {0, 1}
    return rows


@pytest.fixture(scope="session")
def small_patches(small_rows) -> np.ndarray:
    """The pixels of `small_rows`, (SMALL_N, 96, 96, 3) uint8."""
    return np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{i}.tif") for i, _ in small_rows])


@pytest.fixture
def small_kaggle(tmp_path, small_rows) -> Path:
    """Kaggle layout: train/<id>.tif + train_labels.csv with SMALL_N real patches."""
    root = tmp_path / "kaggle"
    (root / "train").mkdir(parents=True)
    for item, _ in small_rows:
        shutil.copy(SAMPLE_DATASET / "train" / f"{item}.tif", root / "train" / f"{item}.tif")
    write_labels_csv(root / "train_labels.csv", small_rows)
    return root


@pytest.fixture
def class_folder_dir(tmp_path, small_rows, small_patches) -> Path:
    """Class folders 0/ and 1/: even patches as PNG (lossless), odd ones as JPEG."""
    root = tmp_path / "classes"
    for k, ((item, label), pixels) in enumerate(zip(small_rows, small_patches, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if k % 2 == 0 else ".jpg"
        Image.fromarray(pixels).save(folder / f"{item}{suffix}", quality=95)
    return root


@pytest.fixture
def unlabelled_folder_dir(tmp_path, small_rows, small_patches) -> Path:
    """A flat folder of PNG patches with no labels anywhere."""
    root = tmp_path / "unlabelled"
    root.mkdir()
    for (item, _), pixels in zip(small_rows, small_patches, strict=True):
        Image.fromarray(pixels).save(root / f"{item}.png")
    return root


def write_pcam_split(
    folder: Path,
    split: str,
    pixels: np.ndarray,
    labels: np.ndarray | None,
    slides: list[str] | None = None,
) -> None:
    """Write one split in PCam's HDF5 release layout (y shaped (N, 1, 1, 1) as in the original)."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"camelyonpatch_level_2_split_{split}"
    with h5py.File(f"{stem}_x.h5", "w") as handle:
        handle.create_dataset("x", data=pixels, chunks=(min(len(pixels), 16), 96, 96, 3))
    if labels is not None:
        with h5py.File(f"{stem}_y.h5", "w") as handle:
            handle.create_dataset("y", data=np.asarray(labels, dtype=np.uint8).reshape(-1, 1, 1, 1))
    if slides is not None:
        rows = "".join(f"{k},{k * 96},{k * 48},{slide}\n" for k, slide in enumerate(slides))
        Path(f"{stem}_meta.csv").write_text("index,coord_y,coord_x,wsi\n" + rows)


@pytest.fixture
def pcam_h5_dir(tmp_path, small_rows, small_patches) -> Path:
    """PCam HDF5 layout: splits 'train' (first 30) and 'valid' (last 10), x/y/meta files."""
    labels = np.array([label for _, label in small_rows])
    slides = [f"patient_{k // 8:03d}_node_{k % 3}" for k in range(len(small_rows))]
    root = tmp_path / "pcam"
    write_pcam_split(root, "train", small_patches[:30], labels[:30], slides[:30])
    write_pcam_split(root, "valid", small_patches[30:], labels[30:], slides[30:])
    return root


def _fit_tiny_model(data_dir: Path, out_path: Path, *, epochs: int = 3) -> Path:
    """The tiny CNN fitted for a few steps on every patch of `data_dir`, saved to `out_path`."""
    import keras

    from core.data.dataset import open_dataset
    from core.model.architectures import build_model
    from core.model.io import save_model

    dataset = open_dataset(data_dir)
    x = dataset.read_batch(range(len(dataset)))
    model = build_model("tiny", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x, dataset.labels.astype("float32"), epochs=epochs, batch_size=16, verbose=0)
    return save_model(model, out_path)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name` after `build(folder)` has filled it, once per test run: under pytest-xdist
    the first worker that asks builds it in the run's temporary folder, which every worker shares,
    while the others wait on a lock and then read it. A build that failed half-way is done again."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not the user's
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def fit_tiny_model():
    """fit_tiny_model(data_dir, out_path) -> out_path: one definition of the tiny real model that the
    prediction and CLI tests score with (real patches, a real Keras model trained for seconds)."""
    return _fit_tiny_model


@pytest.fixture(scope="session")
def tiny_kaggle_model(tmp_path_factory):
    """tiny_kaggle_model(n_per_class) -> (data, model): a Kaggle copy of 2 x `n_per_class` real patches
    and the tiny model fitted on it, built once per session for each size and shared by every module
    that asks for it. Read-only: a test that changes the data or the model copies it first."""
    from page_helpers import copy_kaggle_subset

    def get(n_per_class: int) -> tuple[Path, Path]:
        def build(root: Path) -> None:
            _fit_tiny_model(copy_kaggle_subset(root / "data", n_per_class), root / "tiny.keras")

        root = built_once(tmp_path_factory, f"tiny-kaggle-{n_per_class}", build)
        return root / "data", root / "tiny.keras"

    return get


@pytest.fixture(autouse=True)
def real_main():
    """`__main__` back to pytest's after each test: AppTest leaves the text of a test's function there,
    and a Dask nanny restarting a worker later (outside core.spawning's guard) would run it."""
    saved = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = saved


@pytest.fixture(scope="session", autouse=True)
def process_workspace(tmp_path_factory):
    """Each test process its own default workspace (PATCHLENS_HOME), never the project's: training's
    one-job-per-workspace lock, the caches and the job folders live there, and pytest-xdist runs
    several test processes at once (two of them training in one workspace would refuse each other)."""
    if os.environ.get("PATCHLENS_HOME"):
        yield
        return
    os.environ["PATCHLENS_HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    os.environ.pop("PATCHLENS_HOME", None)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A throwaway workspace (PATCHLENS_HOME) for one test: prediction caches never go to the project's."""
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    return tmp_path / "workspace"


@pytest.fixture
def run_cli(capsys):
    """run_cli(*argv) -> (exit code, stdout, stderr) of `python -m core ARGV`, run in this process."""
    from core.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def page_model(tmp_path_factory) -> Path:
    """A tiny real model (page_helpers.tiny_model), fitted once per session. Read-only."""
    from page_helpers import tiny_model

    return (
        built_once(tmp_path_factory, "page-model", lambda root: tiny_model(root / "tiny.keras"))
        / "tiny.keras"
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(workspace, run dir): a real finished run on 2 x 20 real patches (page_helpers.run_on_kaggle_copy),
    trained once per session. Read-only: a module takes its own page_helpers.copy_workspace."""
    from page_helpers import TINY_RUN, run_on_kaggle_copy

    root = built_once(
        tmp_path_factory, "tiny-run", lambda root: run_on_kaggle_copy(root / "workspace", root / "data", 20)
    )
    return root / "workspace", root / "workspace" / "runs" / TINY_RUN


SHUFFLED_VALIDATION_N = 200  # the sample's first rows, their labels shuffled: shuffled_validation_run


@pytest.fixture(scope="session")
def shuffled_validation_run(tmp_path_factory) -> tuple[Path, int, str]:
    """(run dir, exit code, stderr) of `python -m core train` (core.cli.main, in this process): a
    two-epoch patchnet run on 400 patches of the bundled sample, validated on its first 200 patches
    with their labels shuffled (same ids and pixels; those 200 are left out of training). One real
    training of ~40 s shared by two checks: test_chance (the chance warning) and test_batchnorm (the
    inference-mode scores against the true labels). Read-only."""
    import contextlib
    import io

    from core.cli import main

    def build(root: Path) -> None:
        rows = sample_rows()[:SHUFFLED_VALIDATION_N]
        labels = np.random.default_rng(0).permutation([label for _, label in rows])
        validation = root / "mislabelled"
        (validation / "train").mkdir(parents=True)
        for item, _ in rows:
            shutil.copy(SAMPLE_DATASET / "train" / f"{item}.tif", validation / "train" / f"{item}.tif")
        write_labels_csv(validation / "train_labels.csv", [(i, int(y)) for (i, _), y in zip(rows, labels)])
        argv = ["train", SAMPLE_DATASET, "--val-data", validation, "--arch", "patchnet", "--epochs", "2"]
        # 400 of the other 800 patches in batches of 32: 13 steps an epoch, as 800 in batches of 64
        # gave, in four fifths of the time (inference AUC on the true labels 0.883 against 0.879)
        argv += ["--limit", "400", "--batch-size", "32"]
        stderr = io.StringIO()
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
            patch.setenv("PATCHLENS_HOME", str(root / "workspace"))  # the one-job lock, the caches
            code = main([str(a) for a in argv] + ["--out", str(root / "run"), "--quiet"])
        (root / "exit_code").write_text(str(code))
        (root / "stderr.txt").write_text(stderr.getvalue())

    root = built_once(tmp_path_factory, "shuffled-validation-run", build)
    return root / "run", int((root / "exit_code").read_text()), (root / "stderr.txt").read_text()


@pytest.fixture()
def predict_page(page_model, tmp_path, monkeypatch):
    """An AppTest on the Predict page with `page_model` active, in a fresh workspace."""
    from page_helpers import open_page

    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "workspace"))
    return open_page(tmp_path / "workspace", "predict", model=page_model)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium for one browser test module (browser_helpers.launch_browser)."""
    from browser_helpers import launch_browser

    yield from launch_browser()


@pytest.fixture(scope="session")
def baseline_server(tmp_path_factory):
    """One `streamlit run` server (browser_helpers.ServedApp) shared by the browser tests that only need
    the bundled baseline as the active model and Kaggle-layout copies of real patches as data roots:
    BASELINE_SERVER_DATA (first/, second/, subset/). Started once, when a test first asks.
    Tests that need a fresh server, their own runs or other data start their own."""
    from browser_helpers import serve_kaggle_copies

    with serve_kaggle_copies(tmp_path_factory.mktemp("browser-baseline"), **BASELINE_SERVER_DATA) as served:
        yield served


@pytest.fixture
def cold_engine():
    """This process's job engine closed before the test, so the test's first job starts an embedded
    cluster of its own, its workers still importing TensorFlow — the first job of a freshly started
    server. That is the window in which a page shows a queued job with its progress and Stop button;
    on a warm engine a job of a few patches is over before the page's next run. After the test the
    engine is the shared cluster again, if it was started."""
    from browser_helpers import shared_address

    from core.jobs import engine

    engine.use(None)
    yield
    engine.use(shared_address())


@pytest.fixture(scope="session", autouse=True)
def shared_cluster_closed():
    """The suite's shared cluster (browser_helpers.shared_cluster, started when first asked for)
    stopped at the end of the session."""
    from browser_helpers import close_shared_cluster

    yield
    close_shared_cluster()


@pytest.fixture
def engine_cluster():
    """The suite's shared real Dask LocalCluster (browser_helpers.shared_cluster: 2 worker processes,
    1 thread each), and the job engine (core.jobs.engine) pointed at it: every job a test launches
    runs on its workers, which stay warm from one test to the next. A test that kills a worker leaves
    it to its nanny: the next test waits until it has joined again."""
    from browser_helpers import shared_cluster, wait_for_shared_workers

    from core.jobs import engine

    cluster = shared_cluster()
    engine.use(cluster.scheduler_address)
    yield cluster
    wait_for_shared_workers()
