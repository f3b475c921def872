"""Data roots: the dashboard opens datasets only inside them, whatever symlinks say; whether a web user
may add roots depends on PATCHLENS_ROOTS_FROM_UI and, by default, on the address the server listens on."""

from __future__ import annotations

import os

import pytest

from core.errors import InputError, PathNotAllowedError
from core.settings import (
    DATA_DIR,
    ROOTS_FROM_UI_ENV,
    check_allowed,
    data_roots,
    roots_from_ui,
    workspace_dir,
)


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "set").mkdir(parents=True)
    monkeypatch.setenv("PATCHLENS_DATA_ROOTS", f"{allowed}{os.pathsep}{tmp_path / 'second'}")
    monkeypatch.setenv("PATCHLENS_HOME", str(tmp_path / "home"))
    return allowed


def test_default_roots_are_data_and_the_workspace_plus_the_env_list(roots, tmp_path):
    listed = data_roots()
    assert listed[:2] == [DATA_DIR.resolve(), workspace_dir()]
    assert roots.resolve() in listed and (tmp_path / "second").resolve() in listed


def test_paths_inside_a_root_are_allowed(roots):
    assert check_allowed(roots / "set") == (roots / "set").resolve()
    assert check_allowed(DATA_DIR / "sample") == (DATA_DIR / "sample").resolve()


def test_outside_paths_dotdot_and_escaping_symlinks_are_refused(roots, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in (outside, roots / ".." / "outside", "/etc"):
        with pytest.raises(PathNotAllowedError, match="outside the data roots"):
            check_allowed(path)
    (roots / "escape").symlink_to(outside)
    with pytest.raises(PathNotAllowedError, match="outside the data roots"):
        check_allowed(roots / "escape")


def test_a_symlink_loop_and_a_missing_path_get_clear_messages(roots):
    (roots / "loop").symlink_to(roots / "loop")
    with pytest.raises(PathNotAllowedError, match="cannot be resolved"):
        check_allowed(roots / "loop")
    with pytest.raises(PathNotAllowedError, match="does not exist"):
        check_allowed(roots / "missing")
    with pytest.raises(PathNotAllowedError, match="Enter the path"):
        check_allowed("  ")


def test_extra_roots_from_the_settings_extend_the_list(roots, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    with pytest.raises(PathNotAllowedError):
        check_allowed(extra)
    assert check_allowed(extra, extra_roots=[str(extra)]) == extra.resolve()


def test_a_nul_character_is_refused_with_a_message(roots):
    with pytest.raises(PathNotAllowedError, match="NUL"):
        check_allowed(str(DATA_DIR / "sample") + "\x00/etc")


@pytest.mark.parametrize("address", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.1.1", "::1", "[::1]"])
def test_adding_roots_from_the_page_is_on_by_default_on_a_loopback_address(address, monkeypatch):
    monkeypatch.delenv(ROOTS_FROM_UI_ENV, raising=False)
    assert roots_from_ui(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "10.0.0.5", "patchlens.example.org"])
def test_adding_roots_from_the_page_is_off_by_default_on_any_other_address(address, monkeypatch):
    monkeypatch.delenv(ROOTS_FROM_UI_ENV, raising=False)
    assert not roots_from_ui(address)


def test_the_roots_from_ui_variable_decides_whatever_the_address(monkeypatch):
    monkeypatch.setenv(ROOTS_FROM_UI_ENV, "0")
    assert not roots_from_ui("localhost")
    monkeypatch.setenv(ROOTS_FROM_UI_ENV, "1")
    assert roots_from_ui("0.0.0.0")
    monkeypatch.setenv(ROOTS_FROM_UI_ENV, "yes")
    with pytest.raises(InputError, match="PATCHLENS_ROOTS_FROM_UI must be 1 or 0, not 'yes'"):
        roots_from_ui("localhost")
