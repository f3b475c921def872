"""Importing TensorFlow while other threads of the process may import it too.

TensorFlow's `__init__` imports `keras.src.optimizers`, and Keras' imports `tensorflow`. So a thread
that starts with `import tensorflow` and another that starts with `import keras` at the same moment
each hold the module lock the other needs. Python breaks the cycle with a `_DeadlockError` in one
of them, and that half-done import leaves TensorFlow broken for the life of the process: every later
import fails with "Registering two gradient with name 'ReduceDataset'". Seen on an engine worker
(its warm-up thread's `import tensorflow` against a training task's `import keras`: the run failed
before its first step) and in a Streamlit process (the warm-up against a page).

`import_tensorflow()` imports both, one thread at a time. What may run beside another thread's import
calls it before anything else that uses TensorFlow: the engine worker's warm-up and tasks
(core.jobs.worker), a cohort's slide task (core.slides.task) and core.model.io.load_model, through
which the app's warm-up and its pages load their models. After the first import it costs a lock and
two dictionary look-ups.
"""

from __future__ import annotations

import threading

_lock = threading.RLock()  # re-entrant: a thread inside the import never waits on itself


def import_tensorflow() -> None:
    """Import TensorFlow and Keras, waiting for any other thread of this process doing the same."""
    with _lock:
        import keras  # noqa: F401  (Keras imports TensorFlow, whose __init__ imports Keras' optimizers)
        import tensorflow  # noqa: F401
