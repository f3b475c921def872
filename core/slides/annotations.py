"""QuPath annotations in and out (GeoJSON, level-0 pixel coordinates; geometry by shapely).

In: a file as QuPath exports it — a FeatureCollection, one Feature, or a list of Features — whose
Polygon / MultiPolygon geometries carry a `classification` name in their properties. Annotations
classed Tumour / Tumor (any case) are the tumour; another class named by the caller is a region
that limits scoring. Any other geometry (points, lines) is ignored. A file that cannot be read is an
AnnotationError in one line.

Tile labels (PCam's own rule, so the tile labels mean what the patch labels mean): a tile is positive
when its centre 32 x 32 box (at the model's resolution) overlaps a tumour annotation with a positive
area; touching an edge is not overlapping. A tile is inside a region when its centre is.

Out: the thresholded map (the cells at or above the threshold) as outline polygons, one GeoJSON
annotation per connected piece, classified Tumour, so QuPath shows the model's outline next to the
pathologist's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.constants import IMAGE_SIZE
from core.errors import AnnotationError
from core.files import atomic_write_json
from core.region.tiling import Grid

TUMOUR_CLASSES = ("tumour", "tumor")
CENTRE_SIZE = 32  # px at the model's resolution: PCam labels a patch by its centre 32 x 32 box
OUTLINE_CLASS = {"name": "Tumour", "color": [228, 87, 86]}
AREAL_TYPES = ("Polygon", "MultiPolygon")


@dataclass
class Annotations:
    """The areal annotations of one slide: (class name, shapely geometry) pairs."""

    path: Path
    shapes: list[tuple[str, object]] = field(default_factory=list)

    def union_of(self, names: tuple[str, ...]):
        """The union of the shapes whose class is one of `names` (any case), or None."""
        import shapely

        wanted = {name.lower() for name in names}
        picked = [shape for name, shape in self.shapes if name.lower() in wanted]
        return shapely.union_all(picked) if picked else None

    @property
    def tumour(self):
        return self.union_of(TUMOUR_CLASSES)


def _features(document, name: str) -> list:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise AnnotationError(f"{name}: not GeoJSON (expected a Feature or a FeatureCollection).")
    if document.get("type") == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise AnnotationError(f"{name}: a FeatureCollection without a list of features.")
        return features
    if document.get("type") == "Feature":
        return [document]
    raise AnnotationError(
        f"{name}: not GeoJSON (type {document.get('type')!r}; expected Feature or FeatureCollection)."
    )


def _class_name(properties) -> str:
    classification = (properties or {}).get("classification") if isinstance(properties, dict) else None
    if isinstance(classification, dict):
        return str(classification.get("name") or "")
    return str(classification or "")


def _shape(feature, name: str, number: int):
    """The feature's shapely geometry (made valid), or None when it is not areal."""
    import shapely
    from shapely.geometry import shape

    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    if not isinstance(geometry, dict) or geometry.get("type") not in AREAL_TYPES:
        return None
    try:
        polygon = shape(geometry)
    except Exception as error:  # shapely raises several types for malformed coordinates
        raise AnnotationError(f"{name}: feature {number} has unreadable coordinates ({error}).") from None
    return polygon if polygon.is_valid else shapely.make_valid(polygon)


def read_annotations(path: str | Path) -> Annotations:
    """The areal annotations of a QuPath GeoJSON file; AnnotationError when it cannot be read."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AnnotationError(f"{path.name}: cannot be read ({error.strerror or error}).") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path.name}: not valid JSON ({error}).") from None
    annotations = Annotations(path)
    for number, feature in enumerate(_features(document, path.name), start=1):
        polygon = _shape(feature, path.name, number)
        if polygon is not None and not polygon.is_empty:
            annotations.shapes.append((_class_name(feature.get("properties")), polygon))
    return annotations


# ----------------------------------------------------------------------------- tiles


def _tile_origins(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.indices(grid.shape)
    x, y, _, _ = grid.tile_box(rows, cols)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def tile_labels(grid: Grid, tumour) -> np.ndarray:
    """(rows, cols) bool: the tile's centre 32 x 32 box overlaps `tumour` (None: all False)."""
    import shapely

    if tumour is None or tumour.is_empty:
        return np.zeros(grid.shape, dtype=bool)
    x, y = _tile_origins(grid)
    offset, size = (IMAGE_SIZE - CENTRE_SIZE) / 2 / grid.scale, CENTRE_SIZE / grid.scale
    boxes = shapely.box(x + offset, y + offset, x + offset + size, y + offset + size)
    shapely.prepare(tumour)
    return shapely.intersects(tumour, boxes) & ~shapely.touches(tumour, boxes)


def tiles_inside(grid: Grid, region) -> np.ndarray:
    """(rows, cols) bool: the tile's centre lies inside `region`."""
    import shapely

    x, y = _tile_origins(grid)
    half = IMAGE_SIZE / 2 / grid.scale
    return shapely.contains_xy(region, x + half, y + half)


def tile_metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Tile AUC, sensitivity, specificity at `threshold` and Dice of the thresholded tiles against the
    annotation's, over the scored tiles (None where the labels cannot define one)."""
    from core.evaluate.metrics import metrics_at

    scored = ~np.isnan(probabilities)
    truth, probs = labels[scored].astype(int), probabilities[scored].astype(np.float64)
    if not truth.size:
        return {"tile_n": 0, "tile_positive": 0, "tile_auc": None, "tile_sensitivity": None,
                "tile_specificity": None, "dice": None}  # fmt: skip
    metrics = metrics_at(truth, probs, threshold)
    (_, fp), (fn, tp) = metrics["confusion"]
    return {
        "tile_n": int(truth.size),
        "tile_positive": int(truth.sum()),
        "tile_auc": metrics["auc"],
        "tile_sensitivity": metrics["sensitivity"],
        "tile_specificity": metrics["specificity"],
        "dice": (2 * tp / (2 * tp + fp + fn)) if (tp + fp + fn) else None,
    }


# ----------------------------------------------------------------------------- outlines out


def outline_geometry(cells: np.ndarray, grid: Grid, threshold: float):
    """The union of the map's cells at or above `threshold`, in level-0 px (None when there are none)."""
    import shapely

    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(cells >= threshold)
    if not rows.size:
        return None
    size = grid.stride / grid.scale
    boxes = shapely.box(cols * size, rows * size, (cols + 1) * size, (rows + 1) * size)
    return shapely.union_all(boxes)


def outline_features(geometry) -> list[dict]:
    """One QuPath annotation Feature per polygon of `geometry`."""
    from shapely.geometry import mapping

    polygons = [] if geometry is None else list(getattr(geometry, "geoms", [geometry]))
    return [
        {
            "type": "Feature",
            "geometry": mapping(polygon),
            "properties": {
                "objectType": "annotation",
                "classification": OUTLINE_CLASS,
                "measurements": {"area_px": round(polygon.area, 1)},
            },
        }  # fmt: skip
        for polygon in polygons
    ]


def write_outlines(path: str | Path, cells: np.ndarray, grid: Grid, threshold: float) -> int:
    """Write the model's outline (outline_features) as a FeatureCollection; returns the polygon count."""
    features = outline_features(outline_geometry(cells, grid, threshold))
    atomic_write_json(path, {"type": "FeatureCollection", "features": features})
    return len(features)


def exterior_rings(geometry) -> list[np.ndarray]:
    """The (n, 2) exterior rings of a (Multi)Polygon's pieces, for drawing outlines."""
    if geometry is None or geometry.is_empty:
        return []
    pieces = list(getattr(geometry, "geoms", [geometry]))
    return [np.asarray(piece.exterior.coords) for piece in pieces if hasattr(piece, "exterior")]
