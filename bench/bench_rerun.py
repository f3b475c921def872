"""One Streamlit rerun of a page (what every click and slider move costs the server), with Streamlit's
own after-run clean-up against the one PatchLens installs (ui.keras_session).

Streamlit ends every script run with `keras.backend.clear_session()` once Keras is imported, and Keras 3
ends that with a full `gc.collect()`. The process here is set up as a server is after its warm-up:
TensorFlow imported, the bundled baseline loaded and run once, the app's pages imported. Each page is
opened with AppTest (Streamlit's own script runner, as `streamlit run` uses) on the bundled sample, then
rerun --reruns times per clean-up, the two clean-ups interleaved in rounds; the median rerun is shown.

Usage: /work/main/.venv/bin/python bench/bench_rerun.py [--repeats 3] [--reruns 10] [--quick]
"""

from __future__ import annotations

import os
import tempfile
import time

from common import PROJECT_DIR, SCRATCH, log, median, parser, report, spread, table

PAGES = {"Home": None, "Dataset": "pages/1_dataset.py", "Evaluate": "pages/3_evaluate.py"}


def warm_process() -> None:
    """TensorFlow imported and the baseline loaded and run once, as the app's warm-up leaves a server."""
    import numpy as np

    from core.model.io import load_model
    from core.settings import BASELINE_MODEL

    load_model(BASELINE_MODEL)(np.zeros((1, 96, 96, 3), "float32"))


def open_app(script: str | None):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(PROJECT_DIR / "streamlit_app.py"), default_timeout=300)
    app.run()
    if script:
        app.switch_page(script)
        app.run()
    if app.exception:
        raise RuntimeError(f"{script}: {app.exception}")
    return app


def rerun_seconds(app, reruns: int) -> list[float]:
    times = []
    for _ in range(reruns):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--reruns", type=int, default=10, help="reruns per page, clean-up and round")
    args = p.parse_args()
    reruns = 2 if args.quick else args.reruns
    SCRATCH.mkdir(parents=True, exist_ok=True)
    os.environ["PATCHLENS_HOME"] = tempfile.mkdtemp(dir=SCRATCH, prefix="rerun-home-")

    from streamlit.runtime.scriptrunner import script_runner

    streamlits = script_runner._clean_problem_modules  # before ui.frame swaps it
    warm_process()
    apps = {name: open_app(script) for name, script in PAGES.items()}  # imports ui.frame: swapped
    ours = script_runner._clean_problem_modules
    assert ours is not streamlits, "ui.keras_session did not swap Streamlit's clean-up"
    cleanups = {"Streamlit's (clear_session)": streamlits, "PatchLens's (keeps the session)": ours}
    seconds = {(page, name): [] for page in PAGES for name in cleanups}
    for round_ in range(args.repeats):
        for page, app in apps.items():
            for name, cleanup in cleanups.items():
                script_runner._clean_problem_modules = cleanup
                seconds[page, name] += rerun_seconds(app, reruns)
        log(f"round {round_ + 1}/{args.repeats} done")
    script_runner._clean_problem_modules = ours

    rows = []
    for page in PAGES:
        theirs, kept = (seconds[page, name] for name in cleanups)
        rows.append([page, median(theirs) * 1000, spread([t * 1000 for t in theirs]),
                     median(kept) * 1000, spread([t * 1000 for t in kept]), median(kept) / median(theirs)])  # fmt: skip
    body = table(
        ["page", "Streamlit's clean-up: ms", "(min–max)", "kept session: ms", "(min–max)", "ratio"], rows
    )
    notes = [
        f"{reruns} reruns per page and clean-up in each of {args.repeats} rounds, interleaved; one AppTest "
        "per page on the bundled sample, the baseline active, in one process holding TensorFlow and the "
        "loaded baseline (as after the app's warm-up).",
        "The difference is Keras' clear_session: a full gc.collect() over the server's heap and a cleared "
        "TensorFlow kernel cache. It grows with the heap: a long-lived server holding more than this "
        "process pays more.",
    ]
    report(
        "One Streamlit rerun, with and without Keras' clear_session (bench/bench_rerun.py)", body, args, notes
    )


if __name__ == "__main__":
    main()
