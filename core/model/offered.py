"""Which model files the app may load when a link or a stored job names one: the bundled baseline
and the runs of the workspace, nothing else (a crafted link never makes the app load a file from
elsewhere — loading a .keras file can run its code)."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ModelError
from core.model.io import resolve_model_path
from core.settings import BASELINE_MODEL, runs_dir


def check_offered_model(path: str) -> Path:
    """The model file behind `path` if it is one the sidebar offers (the bundled baseline or a run of
    the workspace); ModelError otherwise. A link never makes the app load a file from elsewhere."""
    resolved = Path(os.path.realpath(resolve_model_path(path)))
    baseline, runs = Path(os.path.realpath(BASELINE_MODEL)), Path(os.path.realpath(runs_dir()))
    if resolved != baseline and not resolved.is_relative_to(runs):
        raise ModelError(f"{path} is neither the bundled baseline nor a run of the workspace.")
    return resolved
