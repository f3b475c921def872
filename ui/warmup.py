"""Warm TensorFlow and the active model in the background, once per server process.

Started by ui.frame.page once the first page's body has run (the page has painted without
TensorFlow; also when that body ended in st.stop() or the user left mid-run), a daemon thread
imports TensorFlow, loads the session's active model through the pages' own cache
(ui.cache.model_at and explainer_at, the very entries the pages hit) and traces the compiled predict
and the fused Grad-CAM on one blank patch, so the first patch dropped on the Predict page finds
everything ready.

st.cache_resource works from a thread without a script-run context (it only skips its spinner), so
the pages hit the very objects warmed here. Under AppTest (`global.appTest`) the warm-up stays off
unless PATCHLENS_WARMUP=1, so page tests keep their own TensorFlow timing; PATCHLENS_WARMUP=0 turns
it off for a server.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from streamlit import config
from streamlit.logger import get_logger

WARMUP_ENV = "PATCHLENS_WARMUP"
_lock = threading.Lock()
_thread: threading.Thread | None = None
report: dict = {}  # what the warm-up did: tensorflow_before, model, seconds, error

log = get_logger("patchlens.warmup")


def warmup_wanted() -> bool:
    setting = os.environ.get(WARMUP_ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    # config.get_option, not st.get_option: AppTest patches the former only.
    return not config.get_option("global.appTest")


def start_warmup(model_path: str | None) -> threading.Thread | None:
    """Start the warm-up thread for `model_path` unless one was started before (or it is off)."""
    global _thread
    if not model_path or not warmup_wanted():
        return None
    with _lock:
        if _thread is not None:
            return None
        _thread = threading.Thread(target=_warm, args=(model_path,), name="patchlens-warmup", daemon=True)
        _thread.start()
        return _thread


def warmup_thread() -> threading.Thread | None:
    return _thread


def _warm(model_path: str) -> None:
    report["tensorflow_before"] = "tensorflow" in sys.modules
    start = time.perf_counter()
    log.info("warm-up: started for %s", model_path)
    try:
        import numpy as np

        from core.constants import PATCH_SHAPE
        from core.evaluate.predict import compiled_predict
        from core.model.features import compiled_scores
        from ui.cache import explainer_at, model_at

        # loads the model through model_at's entry: core.model.io.load_model, which imports TensorFlow
        # one thread at a time (core.tensorflow_import), so a page importing it meanwhile waits
        explainer = explainer_at(model_path)
        model = model_at(model_path)
        blank = np.zeros((1, *PATCH_SHAPE), dtype=np.uint8)
        compiled_predict(model)(blank.astype(np.float32))
        compiled_scores(model)(blank.astype(np.float32))  # the Predict page's pass (probability + features)
        explainer.explain(blank, "gradcam", "tumour")
        report["model"] = model.patchlens_path
        log.info("warm-up: TensorFlow, %s, predict and Grad-CAM ready", model.patchlens_path)
    except Exception as error:  # a warm-up failure must never reach a page; the page reports it
        report["error"] = f"{type(error).__name__}: {error}"
        log.warning("warm-up of %s failed: %s", model_path, report["error"])
    report["seconds"] = time.perf_counter() - start
    log.info("warm-up: %.1f s", report["seconds"])
