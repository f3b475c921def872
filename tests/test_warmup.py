"""The background warm-up: after the first page has been drawn without TensorFlow, a thread imports
it, loads the active model into the pages' own cache and traces predict and the fused Grad-CAM; the
first patch dropped on the Predict page then finds that model and never loads it again.

Runs in a subprocess: the warm-up happens once per process, and TensorFlow must not be loaded yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from core.settings import BASELINE_MODEL, PROJECT_DIR, SAMPLE_DATASET

APP = str(PROJECT_DIR / "streamlit_app.py")
PREDICT = "pages/4_predict.py"
PATCH = sorted((SAMPLE_DATASET / "train").glob("*.tif"))[0]  # a real patch to drop on the Predict page

SCRIPT = textwrap.dedent(f"""
    import json, sys
    from streamlit.testing.v1 import AppTest
    import core.model.io as model_io
    from ui import warmup

    loads = []  # every model file loaded in this process, by whom ever: the real loader, counted
    real_load = model_io.load_model
    def counted_load(path, *args, **kwargs):
        loads.append(str(path))
        return real_load(path, *args, **kwargs)
    model_io.load_model = counted_load

    at = AppTest.from_file({APP!r}, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    thread = warmup.warmup_thread()
    assert thread is not None, "no warm-up started"
    thread.join(300)
    warm_loads = list(loads)

    # The page itself: the first drop on Predict scores and explains with the cached, warm model.
    at.switch_page({PREDICT!r}).run()
    at.file_uploader(key="predict_uploads").set_value([({PATCH.name!r}, open({str(PATCH)!r}, "rb").read(), "image/tiff")])
    at.run()
    assert not at.exception, at.exception
    scored = at.dataframe[0].value["probability"].notna().sum()

    from ui.cache import explainer_at, model_at
    model = model_at(warmup.report["model"])
    explainer = explainer_at(warmup.report["model"])
    print(json.dumps({{
        "report": warmup.report,
        "warm_loads": warm_loads,
        "loads_after_drop": loads,
        "scored": int(scored),
        "traced_predict": sorted(map(str, getattr(model, "_patchlens_compiled_predict", {{}}))),
        "fused_gradcam": "gradcam-fused" in explainer._visualizers,
        "same_model": explainer.model is model,
    }}))
""")


def run_app(tmp_path, warmup: str, script: str = SCRIPT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATCHLENS_HOME": str(tmp_path / "ws"), "PATCHLENS_WARMUP": warmup}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=400, env=env
    )


def test_the_first_page_warms_tensorflow_and_the_model_in_the_background(tmp_path):
    result = run_app(tmp_path, "1")
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    report = seen["report"]
    assert "error" not in report, report
    assert report["tensorflow_before"] is False  # the Home page was drawn before TensorFlow loaded
    assert report["model"] == str(BASELINE_MODEL)
    assert seen["warm_loads"] == [str(BASELINE_MODEL)]  # the warm-up loaded the model once
    assert seen["scored"] == 1
    assert seen["loads_after_drop"] == [str(BASELINE_MODEL)]  # the page's drop found it warm: no second load
    assert seen["traced_predict"] == ["False"]  # compiled_predict traced (no TTA) on the cached model
    assert seen["fused_gradcam"] and seen["same_model"]


def test_the_warm_up_can_be_turned_off(tmp_path):
    result = run_app(tmp_path, "0")
    assert result.returncode != 0 and "no warm-up started" in result.stderr


STOPPED_FIRST = textwrap.dedent(f"""
    import json
    from streamlit.testing.v1 import AppTest
    from ui import warmup

    # The server's first run is the Predict page with nothing dropped: its body ends in st.stop(), after
    # which every session-state read raises StopException again (a user leaving a page mid-run too).
    at = AppTest.from_file({APP!r}, default_timeout=120)
    at.switch_page({PREDICT!r}).run()
    assert not at.exception, at.exception
    stopped = not at.dataframe  # nothing scored: the body stopped before the results
    thread = warmup.warmup_thread()
    assert thread is not None, "no warm-up started"
    thread.join(300)
    print(json.dumps({{"stopped": stopped, "report": warmup.report}}))
""")


def test_a_page_that_stops_early_still_starts_the_warm_up(tmp_path):
    result = run_app(tmp_path, "1", STOPPED_FIRST)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["stopped"]
    assert seen["report"]["model"] == str(BASELINE_MODEL) and "error" not in seen["report"]
