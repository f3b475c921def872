"""Streamlit's clean-up after every script run, without clearing Keras' session.

Once `keras` is imported, Streamlit ends every script run (every click, every slider move) with
`keras.backend.clear_session()` (`streamlit.runtime.scriptrunner.script_runner._clean_problem_modules`),
for scripts that build a new model on each rerun. Keras 3's clear_session ends with a full
`gc.collect()` and clears TensorFlow's kernel cache. PatchLens builds no model in a script run: models
are loaded once into the UI cache (ui.cache) and jobs build theirs on the engine. So each rerun paid a
full garbage collection of a heap holding TensorFlow for nothing: 0.19 s in a fresh process with the
baseline loaded, more in a long-lived server; the next prediction after it took 0.17 s instead of
0.11 s. And clear_session replaces Keras' global state object for every thread, so one session's
rerun could wipe the state of a model another session's thread was loading.

`keep_keras_session()` swaps that clean-up for one that keeps Keras' session and still does the other
half of Streamlit's: closing matplotlib's figures (PatchLens draws none; a user's plugin might).
If a Streamlit release renames the hook, nothing is swapped and Streamlit's own clean-up runs.
"""

from __future__ import annotations

import sys

from streamlit.runtime.scriptrunner import script_runner

_HOOK = "_clean_problem_modules"


def close_matplotlib_figures() -> None:
    """Streamlit's clean-up after a script run, less Keras' clear_session."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def keep_keras_session() -> None:
    """Make Streamlit's script runner (`streamlit run` and AppTest alike) keep Keras' session."""
    if hasattr(script_runner, _HOOK):
        setattr(script_runner, _HOOK, close_matplotlib_figures)
