"""core.spawning: worker processes start without re-running a `__main__` that is not a program (a
Streamlit page, an AppTest script), through multiprocessing (core.data.scan) and through Dask (the
job engine)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from core.data.dataset import open_dataset
from core.data.scan import map_chunks, scan_chunk


def script_main(tmp_path: Path) -> types.ModuleType:
    """A `__main__` like Streamlit's: a script file that, if a child ran it, would leave a marker and
    die."""
    marker = tmp_path / "the script ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nraise NameError('__args')\n")
    module = types.ModuleType("__main__")
    module.__file__ = str(script)
    return module


def test_parallel_chunks_do_not_run_a_script_main(small_kaggle, tmp_path, monkeypatch):
    dataset = open_dataset(small_kaggle)
    chunks = [list(range(0, 10)), list(range(10, 20)), list(range(20, len(dataset)))]
    inline = list(map_chunks(dataset, scan_chunk, chunks, workers=1))
    monkeypatch.setitem(sys.modules, "__main__", script_main(tmp_path))
    parallel = list(map_chunks(dataset, scan_chunk, chunks, workers=2, min_parallel=0))
    assert parallel == inline
    assert not (tmp_path / "the script ran").exists()
    assert sys.modules["__main__"].__file__ == str(tmp_path / "page.py")  # put back afterwards


@pytest.mark.usefixtures("cold_engine")
def test_the_embedded_engine_starts_its_workers_without_running_a_script_main(tmp_path, monkeypatch):
    from core.jobs import engine

    monkeypatch.setitem(sys.modules, "__main__", script_main(tmp_path))
    client = engine.client()
    assert client.submit(sum, [1, 2, 3], pure=False).result(timeout=120) == 6
    assert len(client.scheduler_info()["workers"]) >= 1
    assert not (tmp_path / "the script ran").exists()
