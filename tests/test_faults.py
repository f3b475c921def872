"""Faults: a full disk while a cache or a model is written never leaves a half-written file under its
real name, and never damages the copy that was already there."""

from __future__ import annotations

import hashlib
import resource
import signal
import subprocess
import sys
import textwrap

from core.settings import PROJECT_DIR


def _limit_file_size(max_bytes: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def python(*arguments: str, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` run from the project root, output captured; with `max_file_bytes`, no file it
    writes may grow past that size (the disk is "full")."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=None if max_file_bytes is None else _limit_file_size(max_file_bytes),
    )


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_prepare_on_a_full_disk_keeps_the_existing_cache(small_kaggle, tmp_path):
    out = tmp_path / "cache" / "sample.h5"
    prepare = ["-m", "core", "prepare", str(small_kaggle), "--out", str(out)]
    ok = python(*prepare)
    assert ok.returncode == 0, ok.stderr
    before = digest(out)
    out.chmod(0o644)
    full = python(*prepare, max_file_bytes=200_000)
    assert full.returncode != 0
    assert "Traceback" not in full.stderr and "error: could not write the cache" in full.stderr
    assert digest(out) == before
    assert leftovers(out.parent, {"sample.h5"}) == []


def test_saving_a_model_on_a_full_disk_keeps_the_previous_model(tmp_path):
    from core.model.architectures import build_model
    from core.model.io import save_model

    target = tmp_path / "model.keras"
    save_model(build_model("tiny", seed=0), target)  # the previous model, saved in this process
    before = digest(target)
    # only the save on the full disk needs a process of its own (its file-size limit)
    bigger = textwrap.dedent(f"""
        from core.model.architectures import build_model
        from core.model.io import save_model
        save_model(build_model("patchnet", seed=1), {str(target)!r})
        print("saved")
    """)
    second = python("-c", bigger, max_file_bytes=1_000_000)
    assert second.returncode != 0 and "saved" not in second.stdout
    assert digest(target) == before
    assert leftovers(tmp_path, {"model.keras"}) == []
