"""The background warm-up: after the first page has been drawn without TensorFlow, a thread imports
it, loads the active model into the pages' own cache and traces predict and the fused Grad-CAM.

Runs in a subprocess: the warm-up happens once per process, and TensorFlow must not be loaded yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from core.settings import BASELINE_MODEL, PROJECT_DIR

APP = str(PROJECT_DIR / "streamlit_app.py")

SCRIPT = textwrap.dedent(f"""
    import json, sys
    from streamlit.testing.v1 import AppTest
    from ui import warmup

    at = AppTest.from_file({APP!r}, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    thread = warmup.warmup_thread()
    assert thread is not None, "no warm-up started"
    thread.join(300)

    from ui.gallery import _explainer, _model_file
    from ui.shared import load_model_cached
    resolved, mtime = _model_file(warmup.report["model"])
    model = load_model_cached(resolved, mtime)  # a cache hit: the page's loader sees the warm model
    explainer = _explainer(resolved, mtime)
    print(json.dumps({{
        "report": warmup.report,
        "traced_predict": sorted(map(str, getattr(model, "_patchlens_compiled_predict", {{}}))),
        "fused_gradcam": "gradcam-fused" in explainer._visualizers,
        "same_model": explainer.model is model,
    }}))
""")


def run_app(tmp_path, warmup: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATCHLENS_HOME": str(tmp_path / "ws"), "PATCHLENS_WARMUP": warmup}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=400, env=env
    )


def test_the_first_page_warms_tensorflow_and_the_model_in_the_background(tmp_path):
    result = run_app(tmp_path, "1")
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    report = seen["report"]
    assert "error" not in report, report
    assert report["tensorflow_before"] is False  # the Home page was drawn before TensorFlow loaded
    assert report["model"] == str(BASELINE_MODEL)
    assert seen["traced_predict"] == ["False"]  # compiled_predict traced (no TTA) on the cached model
    assert seen["fused_gradcam"] and seen["same_model"]


def test_the_warm_up_can_be_turned_off(tmp_path):
    result = run_app(tmp_path, "0")
    assert result.returncode != 0 and "no warm-up started" in result.stderr
