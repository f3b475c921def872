"""core.tensorflow_import: a worker's warm-up and a job (or the app's warm-up and a page) that import
TensorFlow at the same moment. Before, the two threads' `import tensorflow` and `import keras` each
held the module lock the other needed; Python raised a _DeadlockError in one and TensorFlow stayed
broken in that process ("Registering two gradient with name 'ReduceDataset'"), so a Train-page job
failed before its first step. Each case runs in a fresh process: TensorFlow must not be imported yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from core.settings import BASELINE_MODEL, PROJECT_DIR

RACE = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    from core.jobs.worker import WarmWorker
    from core.model.io import load_model

    errors = []
    threading.excepthook = lambda args: errors.append(f"{args.thread.name}: {args.exc_value!r}")
    WarmWorker().setup(None)  # the worker's background `import tensorflow` starts...
    model = load_model(sys.argv[1])  # ...while a task loads its model (`import keras`)
    for thread in threading.enumerate():
        if thread.name == "import-tensorflow":
            thread.join()
    print(model(np.zeros((1, 96, 96, 3), np.float32)).shape, errors)
    """
)


def test_a_job_loading_its_model_while_the_worker_warms_up_finds_tensorflow_whole():
    result = subprocess.run(
        [sys.executable, "-c", RACE, str(BASELINE_MODEL)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "(1, 1) []", result.stdout + result.stderr[-2000:]
