"""Shared by the slides tests: a small cohort built at test time from the region mosaic of real patches.

Not a test module. `build_cohort(folder)` writes two good slides (the mosaic as PNG and as pyramidal
TIFF), two broken ones (a text file named .svs, a PNG smaller than a patch), labels.csv, and an
annotations folder: the PNG's tumour patches as a QuPath FeatureCollection of one MultiPolygon, the
TIFF's file holding only a non-tumour class (so all its tiles are negative).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from region_images import mosaic, write_png, write_pyramid_tiff

from core.constants import IMAGE_SIZE, PCAM_MPP

GOOD, BROKEN = ("lesion", "pyramid"), ("text", "tiny")


def square(row: int, col: int) -> list:
    x, y = col * IMAGE_SIZE, row * IMAGE_SIZE
    return [[[x, y], [x + IMAGE_SIZE, y], [x + IMAGE_SIZE, y + IMAGE_SIZE], [x, y + IMAGE_SIZE], [x, y]]]


def tumour_feature(cells) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "MultiPolygon", "coordinates": [square(r, c) for r, c in cells]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
    }


def build_cohort(folder: Path) -> dict:
    image = mosaic()
    slides, notes = folder / "slides", folder / "annotations"
    slides.mkdir(parents=True)
    notes.mkdir()
    write_png(slides / "lesion.png", image.pixels, mpp=PCAM_MPP)
    write_pyramid_tiff(slides / "pyramid.tif", image.pixels)
    (slides / "text.svs").write_text("not a slide\n")
    write_png(slides / "tiny.png", image.pixels[:50, :50], mpp=PCAM_MPP)
    tumour_cells = [cell for cell, label in zip(image.cells, image.labels, strict=True) if label == 1]
    collection = {"type": "FeatureCollection", "features": [tumour_feature(tumour_cells)]}
    (notes / "lesion.geojson").write_text(json.dumps(collection))
    other = {**tumour_feature(tumour_cells[:1])}
    other["properties"] = {"classification": {"name": "Stroma"}}
    (notes / "pyramid.geojson").write_text(json.dumps(other))
    labels = folder / "labels.csv"
    labels.write_text("slide,label\nlesion,1\npyramid,0\ntext,1\n")
    expected = np.zeros((image.pixels.shape[0] // IMAGE_SIZE, image.pixels.shape[1] // IMAGE_SIZE), bool)
    for row, col in tumour_cells:
        expected[row, col] = True
    return {"slides": slides, "annotations": notes, "labels": labels, "tile_labels": expected, "image": image}
