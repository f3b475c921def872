"""One slide of a cohort: the engine's task.

`score_slide(model_path, slide_path, slide_dir, options, annotation_path)` writes the slide's
`core heatmap` outputs (core.region.heatmap / outputs) into `slide_dir`, then `outlines.geojson` (the
model's thresholded map as QuPath annotations), `tile_labels.npy` when annotations are given, and
last `slide.json`: the task key, every aggregation's score and the tile metrics. A folder whose
slide.json carries the same key is complete and is not recomputed (`cached`); the key hashes the
model file, the slide file, the annotation file, the options and FORMAT_VERSION. Anything else is
recomputed, so a run killed at any moment is completed by running it again.

A slide that cannot be scored (not an image, truncated, smaller than a patch, bad GeoJSON) returns a
`failed` row with the reason; the function never raises for one slide's problem. The model is loaded
once per process (worker), keyed by its path and mtime.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.constants import DEFAULT_THRESHOLD, SLIDE_BATCH_SIZE
from core.errors import PatchLensError, RegionImageError
from core.files import atomic_write_json, read_json
from core.region.tiling import DEFAULT_STRIDE
from core.slides.aggregate import slide_scores
from core.tensorflow_import import import_tensorflow

FORMAT_VERSION = 1
RECORD_FILE = "slide.json"
_MODELS: dict[tuple[str, int], object] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SlideOptions:
    """What decides a slide's outputs besides its files."""

    stride: int = DEFAULT_STRIDE
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = SLIDE_BATCH_SIZE  # part of the key (described)
    region_class: str | None = None  # an annotation class that limits scoring to its area
    uncertainty: bool = False  # score with the 8 dihedral views and keep their spread (spread.npy)

    def described(self) -> dict:
        """The options as a key describes them; without uncertainty, as they were before the option
        (so folders and jobs from before it keep their keys)."""
        settings = asdict(self)
        if not settings["uncertainty"]:
            del settings["uncertainty"]
        return settings


def _identity(path: Path | None) -> dict | None:
    if path is None or not path.exists():
        return None
    stat = path.resolve().stat()
    return {"path": str(path.resolve()), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def task_key(model_path: Path, slide_path: Path, options: SlideOptions, annotation_path: Path | None) -> str:
    description = {"format": FORMAT_VERSION, "model": _identity(model_path), "slide": _identity(slide_path),
                   "annotations": _identity(annotation_path), "options": options.described()}  # fmt: skip
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def cached_record(slide_dir: Path, key: str) -> dict | None:
    """The slide's record when its folder is complete for `key`, else None."""
    record = read_json(slide_dir / RECORD_FILE)
    if isinstance(record, dict) and record.get("key") == key and (slide_dir / "summary.json").is_file():
        return record
    return None


def _model(model_path: Path):
    from core.model.io import load_model

    identity = (str(model_path), model_path.stat().st_mtime_ns)
    with _MODELS_LOCK:
        if identity not in _MODELS:
            _MODELS[identity] = load_model(model_path)
        return _MODELS[identity]


def score_slide(model_path, slide_path, slide_dir, options: SlideOptions, annotation_path=None) -> dict:
    """The slide's row (status done, cached or failed); see the module docstring."""
    from core.model.io import resolve_model_path

    import_tensorflow()  # a task on a worker whose warm-up may be importing it this moment

    slide_path, slide_dir = Path(slide_path), Path(slide_dir)
    annotation_path = Path(annotation_path) if annotation_path else None
    row = {"slide": slide_path.stem, "path": str(slide_path), "message": ""}
    try:
        model_path = Path(resolve_model_path(model_path))
        key = task_key(model_path, slide_path, options, annotation_path)
        record = cached_record(slide_dir, key)
        if record is None:
            record = _compute(model_path, slide_path, slide_dir, options, annotation_path, key)
            return {**row, **record["row"], "status": "done"}
        return {**row, **record["row"], "status": "cached"}
    except PatchLensError as error:
        return {**row, "status": "failed", "message": str(error)}
    except OSError as error:
        return {**row, "status": "failed", "message": f"{slide_path.name}: {error.strerror or error}"}


def _compute(model_path: Path, slide_path: Path, slide_dir: Path, options: SlideOptions,
             annotation_path: Path | None, key: str) -> dict:  # fmt: skip
    from core.region.heatmap import model_mpp, prepare, score_layers
    from core.region.outputs import write_outputs
    from core.slides.annotations import read_annotations, tiles_inside
    from core.slides.outputs import kept_probabilities, write_slide_outputs

    started = time.monotonic()
    annotations = read_annotations(annotation_path) if annotation_path and annotation_path.exists() else None
    model = _model(model_path)
    plan = prepare(slide_path, model_resolution=model_mpp(model), stride=options.stride)
    with plan.image:
        region = (
            annotations.union_of((options.region_class,)) if annotations and options.region_class else None
        )
        if region is not None:
            plan.tissue &= tiles_inside(plan.grid, region)
        if not plan.tissue.any():
            raise RegionImageError(
                f"{slide_path.name}: no tissue tile to score (only glass, or outside the region)."
            )
        probabilities, flags, spread = score_layers(
            model, plan, batch_size=options.batch_size, quality=True, uncertainty=options.uncertainty
        )
    slide_dir.mkdir(parents=True, exist_ok=True)
    (slide_dir / RECORD_FILE).unlink(missing_ok=True)  # until the new record is written, not complete
    summary = write_outputs(slide_dir, plan, probabilities, flags, threshold=options.threshold,
                            started=started, model_path=str(model_path), spread=spread)  # fmt: skip
    measured = write_slide_outputs(slide_dir, plan.grid, probabilities, flags, options.threshold, annotations)
    scores = slide_scores(kept_probabilities(probabilities, flags), options.threshold)
    row = {"n_tiles": summary["n_tiles"], "n_scored": summary["n_scored"],
           "tumour_area_mm2": summary["tumour_area_mm2"], "seconds": round(time.monotonic() - started, 2),
           **{f"score_{name}": value for name, value in scores.items()}, **measured}  # fmt: skip
    if "n_uncertain_tumour" in summary:  # scored with --uncertainty
        row["n_uncertain_tumour"] = summary["n_uncertain_tumour"]
    record = {"key": key, "format": FORMAT_VERSION, "row": row}
    atomic_write_json(slide_dir / RECORD_FILE, record)
    return record
