"""A damaged file under runs/ (or a damaged train.lock) reads as words, never a traceback: Home, the
Train page and `python -m core train` each meet status.json holding a list, a string heartbeat or pid,
config.json holding a list or `epochs: "ten"`, metrics.jsonl lines `1` and `"x"`, and train.lock
holding `[1]`. A CLI `train` refused by the lock leaves no run folder behind.

Each test damages its own copy of one real finished run (conftest tiny_run).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from page_helpers import copy_workspace, open_page

from core.train.runs import lock_path, summarize_run

DAMAGES = {
    "status holds a list": ("status.json", "[]", "status.json holds a list, not a record"),
    "string heartbeat": (
        "status.json",
        '{"state": "running", "heartbeat": "soon", "pid": 1}',
        'heartbeat is "soon", not a number',
    ),
    "string pid": ("status.json", '{"state": "running", "pid": "abc"}', 'pid is "abc", not a whole number'),
    "config holds a list": ("config.json", "[1, 2]", "config.json holds a list, not a record"),
    "epochs in words": ("config.json", None, 'epochs is "ten", not a whole number'),
    "metrics lines 1 and x": ("metrics.jsonl", None, "metrics.jsonl: 2 damaged lines left out"),
}


@pytest.fixture()
def run(tiny_run, tmp_path, monkeypatch):
    """A copy of the session's finished run in a fresh workspace, named by train.lock as the job."""
    workspace, run_dir = copy_workspace(tiny_run, tmp_path / "copy")
    monkeypatch.setenv("PATCHLENS_HOME", str(workspace))
    lock_path().write_text(json.dumps({"run_dir": str(run_dir.resolve()), "pid": os.getpid(), "time": 0}))
    return workspace, run_dir


def damage(run_dir, name: str, text: str | None) -> None:
    path = run_dir / name
    if text is None and name == "config.json":
        text = json.dumps({**json.loads(path.read_text()), "epochs": "ten"})
    elif text is None:  # two damaged lines among the sound ones
        text = path.read_text() + '1\n"x"\n'
    path.write_text(text)


def warning_cell(at, run_name: str) -> str:
    table = at.dataframe[-1].value.set_index("run")
    return str(table.loc[run_name, "warning"])


@pytest.mark.parametrize("case", list(DAMAGES))
def test_a_damaged_run_file_reads_as_words_on_home_and_train(run, case):
    workspace, run_dir = run
    name, text, words = DAMAGES[case]
    damage(run_dir, name, text)

    home = open_page(workspace, "train")  # Home is drawn first, then the Train page
    assert not home.exception
    assert "damaged: " in warning_cell(home, run_dir.name)
    assert words in warning_cell(home, run_dir.name)
    home.session_state["watched_run"] = str(run_dir)
    home.run()
    assert not home.exception, home.exception


def test_a_run_with_a_damaged_status_is_failed_not_running(run):
    _, run_dir = run
    damage(run_dir, "status.json", '{"state": "running", "heartbeat": "soon", "pid": "abc"}')
    summary = summarize_run(run_dir)
    assert summary.state == "failed"
    assert 'pid is "abc"' in summary.damaged and 'heartbeat is "soon"' in summary.damaged


def test_a_damaged_lock_is_taken_over_by_home_train_and_the_cli(run, run_cli, tmp_path):
    workspace, run_dir = run
    lock_path().write_text("[1]")
    home = open_page(workspace, "train")
    assert not home.exception
    data = json.loads((run_dir / "config.json").read_text())["data"][0]
    out = tmp_path / "after-damaged-lock"
    code, _, err = run_cli("train", data, "--arch", "tiny", "--epochs", "1", "--out", out, "--quiet")
    assert code == 0, err
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


@pytest.mark.parametrize("config", ["[1, 2]", None])
def test_the_cli_resuming_a_run_with_a_damaged_config_says_so(run, run_cli, config):
    _, run_dir = run
    damage(run_dir, "config.json", config)
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "3")
    assert code == 2
    assert "damaged" in err and "Traceback" not in err


def test_a_cli_train_refused_by_the_lock_leaves_no_folder(run, run_cli, tmp_path):
    workspace, run_dir = run
    status = json.loads((run_dir / "status.json").read_text())
    status.update(state="running", pid=os.getpid(), heartbeat=time.time())
    (run_dir / "status.json").write_text(json.dumps(status))
    data = json.loads((run_dir / "config.json").read_text())["data"][0]
    before = set((workspace / "runs").iterdir())

    out = tmp_path / "refused"
    code, _, err = run_cli("train", data, "--arch", "tiny", "--epochs", "1", "--out", out)
    assert code == 2 and "already running" in err and run_dir.name in err
    assert not out.exists(), "a refused --out folder was left behind"
    code, _, err = run_cli("train", data, "--arch", "tiny", "--epochs", "1")
    assert code == 2 and "already running" in err
    assert set((workspace / "runs").iterdir()) == before, "a refused run folder was left behind"
