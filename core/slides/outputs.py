"""What a slide's folder holds beyond `core heatmap`'s outputs (core.region.outputs), each written
atomically: outlines.geojson (the model's thresholded map as QuPath annotations) and, with
annotations, tile_labels.npy ((rows, cols) bool, core.slides.annotations' rule). The tile
probabilities a slide is scored and measured on leave out the tiles the input-quality gate withheld,
as the map does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.files import atomic_write_bytes
from core.region.tiling import Grid

OUTLINES_FILE = "outlines.geojson"
TILE_LABELS_FILE = "tile_labels.npy"


def kept_probabilities(probabilities: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The tile probabilities with the tiles the quality gate withheld set to NaN."""
    from core.region.outputs import WITHHOLDING_BITS

    return np.where((flags & WITHHOLDING_BITS) == 0, probabilities, np.nan)


def grid_of(summary: dict) -> Grid:
    """The tile grid a heatmap summary.json describes."""
    return Grid(int(summary["width"]), int(summary["height"]), float(summary["mpp"]),
                float(summary["model_mpp"]), int(summary["stride"]))  # fmt: skip


def write_slide_outputs(folder: Path, grid: Grid, probabilities: np.ndarray, flags: np.ndarray,
                        threshold: float, annotations=None) -> dict:  # fmt: skip
    """Write outlines.geojson (and tile_labels.npy with annotations); returns the tile metrics
    (empty without annotations)."""
    from core.region.outputs import cell_map, npy_bytes
    from core.slides.annotations import tile_labels, tile_metrics, write_outlines

    folder = Path(folder)
    write_outlines(folder / OUTLINES_FILE, cell_map(probabilities, flags, grid), grid, threshold)
    if annotations is None:
        return {}
    labels = tile_labels(grid, annotations.tumour)
    atomic_write_bytes(folder / TILE_LABELS_FILE, npy_bytes(labels))
    return tile_metrics(kept_probabilities(probabilities, flags), labels, threshold)


def annotate_heatmap(folder: Path, annotation_path: Path) -> dict:
    """`core heatmap --annotations`: a finished heatmap folder measured against a QuPath file."""
    from core.region.outputs import read_outputs
    from core.slides.annotations import read_annotations

    outputs = read_outputs(folder)
    summary = outputs["summary"]
    return write_slide_outputs(folder, grid_of(summary), outputs["probabilities"], outputs["quality"],
                               float(summary["threshold"]), read_annotations(annotation_path))  # fmt: skip
