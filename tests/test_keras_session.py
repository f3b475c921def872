"""Streamlit's clean-up after a script run keeps Keras' session (ui.keras_session): a rerun neither wipes
Keras' global state nor pays a full garbage collection."""

from __future__ import annotations

import sys

import pytest
from page_helpers import APP, RUN_TIMEOUT
from streamlit.testing.v1 import AppTest


@pytest.mark.usefixtures("workspace")
def test_a_page_run_and_a_rerun_keep_keras_global_state():
    import keras  # noqa: F401  (Streamlit's clean-up only touches Keras once it is imported)
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("patchlens_probe", 7)
    app = AppTest.from_file(APP, default_timeout=RUN_TIMEOUT)
    app.run()  # the first run imports ui.frame, which swaps the clean-up before the run ends
    app.run()  # a rerun, as a click makes

    assert not app.exception
    # Streamlit's own clean-up (keras.backend.clear_session, then gc.collect()) replaces Keras' global
    # state object for every thread: the probe would be gone.
    assert global_state.get_global_attribute("patchlens_probe") == 7


def test_the_clean_up_still_closes_matplotlib_figures():
    """The other half of Streamlit's clean-up is kept: pyplot's figures are closed after a run."""
    from streamlit.runtime.scriptrunner import script_runner

    from ui.keras_session import close_matplotlib_figures, keep_keras_session

    keep_keras_session()
    assert script_runner._clean_problem_modules is close_matplotlib_figures

    class Pyplot:  # a module-like stand-in: matplotlib is not among PatchLens's packages
        closed = []

        def close(self, which):
            self.closed.append(which)

    sys.modules["matplotlib.pyplot"] = Pyplot()
    try:
        script_runner._clean_problem_modules()
    finally:
        del sys.modules["matplotlib.pyplot"]
    assert Pyplot.closed == ["all"]
