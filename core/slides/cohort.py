"""A cohort run: every slide of SLIDES scored as one task (core.slides.task), then DIR/slides.csv and
DIR/summary.json (written last, so a folder with a summary.json is complete).

Where the tasks run is one function, `slide_executor(scheduler)`: in this process by default, on an
existing Dask scheduler (the engine's client, core.jobs.engine, its tasks deferred so the scheduler
need not import PatchLens) when an address is given; nothing else here knows where work runs.
Tasks only see files, so a worker needs the model, the slides and DIR on a shared file system.

slides.csv: slide, score (the chosen aggregation), status, message, n_tiles, n_scored,
tumour_area_mm2, label (with labels), then path, seconds, every aggregation's score (score_NAME) and,
with annotations, tile_n, tile_positive, tile_auc, tile_sensitivity, tile_specificity, dice; with
uncertainty, n_uncertain_tumour (tumour tiles whose 8 views' spread is at least UNCERTAIN_SPREAD).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.constants import DEFAULT_THRESHOLD
from core.errors import CohortStopped, InputError
from core.evaluate.metrics import check_threshold
from core.files import atomic_write_csv, atomic_write_json
from core.region.reader import REGION_EXTENSIONS
from core.slides.aggregate import AGGREGATIONS, DEFAULT_AGGREGATE, check_aggregate
from core.slides.metrics import SCORED_STATUSES, labelled_scores, read_labels, slide_metrics, slide_presets
from core.slides.outputs import TILE_LABELS_FILE, kept_probabilities
from core.slides.task import SlideOptions, score_slide

CSV_COLUMNS = ("slide", "score", "status", "message", "n_tiles", "n_scored", "tumour_area_mm2")
EXTRA_COLUMNS = ("path", "seconds", *(f"score_{name}" for name in AGGREGATIONS), "tile_n", "tile_positive",
                 "tile_auc", "tile_sensitivity", "tile_specificity", "dice")  # fmt: skip
INTEGER_COLUMNS = ("n_tiles", "n_scored", "tile_n", "tile_positive")
UNCERTAIN_COLUMN = "n_uncertain_tumour"  # only in a cohort scored with uncertainty
SUMMARY_FILE, TABLE_FILE = "summary.json", "slides.csv"

Progress = Callable[[dict], None]


def find_slides(inputs) -> list[Path]:
    """The slide files named, and those directly inside the folders named, sorted; InputError when a
    path does not exist, none is found, or two slides share a name (their folders would collide)."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(
                p for p in item.iterdir() if p.is_file() and p.suffix.lower() in REGION_EXTENSIONS
            )
        elif item.exists():
            found.append(item)
        else:
            raise InputError(f"{item}: no such file or folder.")
    if not found:
        raise InputError(f"no slide found (looked for {' '.join(REGION_EXTENSIONS)}).")
    names = [path.stem for path in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"two slides share the name {twice[0]!r}; give each slide its own file name.")
    return found


@contextmanager
def slide_executor(scheduler: str | None = None) -> Iterator[Executor]:
    """Where slide tasks run: this process (one at a time: TensorFlow already uses every core), or
    the Dask scheduler at `scheduler`. The one seam the engine (core.jobs) takes over."""
    if not scheduler:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="slide") as executor:
            yield executor
        return
    from core.jobs import engine

    with engine.using(scheduler):  # the one engine's client, its workers warmed (core.jobs.worker)
        yield DeferredExecutor(engine.client().get_executor())


class DeferredExecutor(Executor):
    """A Dask executor whose tasks the scheduler reads without importing PatchLens (engine.deferred)."""

    def __init__(self, executor: Executor):
        self.executor = executor

    def submit(self, function, *args, **kwargs):
        from dask.base import tokenize

        from core.jobs.engine import submit_deferred

        key = f"{function.__name__}-{tokenize(function, args, kwargs)}"  # pure, as Dask's default
        return submit_deferred(self.executor, key, function, args, kwargs)


def run_cohort(model_path, inputs, out_dir, *, options: SlideOptions = SlideOptions(),
               labels_path=None, annotations_dir=None, aggregate: str = DEFAULT_AGGREGATE,
               scheduler: str | None = None, progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None,
               slide_threshold: float = DEFAULT_THRESHOLD) -> dict:  # fmt: skip
    """Score every slide (cached ones are not recomputed), write slides.csv and summary.json; returns
    the summary (slide calls at `slide_threshold`, tile calls at options.threshold). Bad inputs (no
    slide, a bad labels CSV, an unknown aggregate, a threshold outside [0, 1]) fail before any work."""
    check_aggregate(aggregate)
    check_threshold(slide_threshold)
    slides = find_slides(inputs)
    labels = read_labels(labels_path) if labels_path else None
    annotations = Path(annotations_dir) if annotations_dir else None
    if annotations is not None and not annotations.is_dir():
        raise InputError(f"{annotations}: the annotations folder does not exist.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).unlink(missing_ok=True)  # until the new summary is written, not complete
    rows = _score_all(model_path, slides, out, options, annotations, scheduler, progress, should_stop)
    for row in rows:
        row["score"] = row.get(f"score_{aggregate}")
        if labels is not None:
            row["label"] = labels.get(row["slide"])
    write_table(rows, out / TABLE_FILE, labelled=labels is not None)
    summary = cohort_summary(rows, out, aggregate=aggregate, options=options, labelled=labels is not None,
                             annotated=annotations is not None, slide_threshold=slide_threshold)  # fmt: skip
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def _score_all(model_path, slides, out, options, annotations, scheduler, progress, should_stop) -> list[dict]:
    started, rows = time.monotonic(), []
    if scheduler:  # workers run in folders of their own: name every file from the root
        model_path, out = Path(model_path).absolute(), out.absolute()
        slides = [slide.absolute() for slide in slides]
        annotations = annotations.absolute() if annotations else None
    with slide_executor(scheduler) as executor:
        futures = {
            executor.submit(score_slide, str(model_path), str(slide), str(out / slide.stem), options,
                            str(annotations / f"{slide.stem}.geojson") if annotations else None): slide
            for slide in slides
        }  # fmt: skip
        for future in as_completed(futures):
            rows.append(future.result())
            if progress:
                progress(_progress(rows, len(slides), time.monotonic() - started))
            if should_stop and should_stop():
                for pending in futures:
                    pending.cancel()
                raise CohortStopped("stopped on request")
    return sorted(rows, key=lambda row: row["slide"])


def _progress(rows: list[dict], total: int, seconds: float) -> dict:
    done = len(rows)
    tiles = sum(row.get("n_scored") or 0 for row in rows if row["status"] == "done")
    eta = (total - done) * seconds / done if done else None
    return {"done": done, "total": total, "last": rows[-1], "tiles_per_s": round(tiles / max(seconds, 1e-9), 1),
            "eta_s": round(eta, 1) if eta is not None else None}  # fmt: skip


def write_table(rows: list[dict], path: Path, *, labelled: bool) -> None:
    import pandas as pd

    uncertain = (UNCERTAIN_COLUMN,) if any(UNCERTAIN_COLUMN in row for row in rows) else ()
    columns = list(CSV_COLUMNS) + (["label"] if labelled else []) + list(EXTRA_COLUMNS) + list(uncertain)
    frame = pd.DataFrame(rows).reindex(columns=columns)
    for column in INTEGER_COLUMNS + (("label",) if labelled else ()) + uncertain:
        frame[column] = frame[column].astype("Int64")  # counts stay whole numbers beside failed rows
    atomic_write_csv(frame, path)


def cohort_summary(rows: list[dict], out: Path, *, aggregate: str, options: SlideOptions, labelled: bool,
                   annotated: bool, slide_threshold: float = DEFAULT_THRESHOLD) -> dict:  # fmt: skip
    """The cohort's counts, its slide metrics at `slide_threshold` (with the slide ROC's presets) when
    labelled, and its pooled tile metrics at the tile threshold (options.threshold) when annotated."""
    summary = {"n_slides": len(rows), "n_failed": sum(row["status"] == "failed" for row in rows),
               "n_cached": sum(row["status"] == "cached" for row in rows), "aggregate": aggregate,
               "threshold": options.threshold, "slide_threshold": slide_threshold, "stride": options.stride}  # fmt: skip
    if labelled:
        labels, scores = labelled_scores(rows)
        # slide_metrics names its threshold "threshold"; here that key stays the tile threshold
        summary.update({**slide_metrics(labels, scores, slide_threshold), "threshold": options.threshold})
        summary["slide_threshold_presets"] = slide_presets(labels, scores)
        summary["auc_by_aggregate"] = {
            name: slide_metrics(*labelled_scores(rows, f"score_{name}"), slide_threshold)["auc"]
            for name in AGGREGATIONS
        }
    if annotated:
        summary.update(pooled_tile_metrics(rows, out, options.threshold))
    return summary


def pooled_tile_metrics(rows: list[dict], out: Path, threshold: float) -> dict:
    """Tile AUC, sensitivity, specificity and Dice over the tiles of every annotated, scored slide."""
    from core.slides.annotations import tile_metrics

    probabilities, labels = [], []
    for row in rows:
        folder = out / row["slide"]
        if row["status"] in SCORED_STATUSES and (folder / TILE_LABELS_FILE).is_file():
            kept = kept_probabilities(np.load(folder / "probabilities.npy"), np.load(folder / "quality.npy"))
            probabilities.append(kept.ravel())
            labels.append(np.load(folder / TILE_LABELS_FILE).ravel())
    if not probabilities:
        return tile_metrics(np.array([]), np.array([], dtype=bool), threshold)
    return tile_metrics(np.concatenate(probabilities), np.concatenate(labels), threshold)
