"""QuPath annotations in and out (core.slides.annotations) and slide scores (core.slides.aggregate):
GeoJSON shapes QuPath writes, the centre-box tile rule, one-line errors, outlines that QuPath reads
back as the model's map, and `core heatmap --annotations`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from slides_cohort import build_cohort, square

from core.cli import main
from core.constants import IMAGE_SIZE, PCAM_MPP
from core.region.tiling import Grid
from core.slides.aggregate import AGGREGATIONS, slide_scores
from core.slides.annotations import (
    AnnotationError,
    outline_features,
    outline_geometry,
    read_annotations,
    tile_labels,
    tiles_inside,
)

GRID = Grid(6 * IMAGE_SIZE, 4 * IMAGE_SIZE, PCAM_MPP, PCAM_MPP)  # 4 x 6 tiles, one tile = 96 level-0 px


def polygon(ring, name="Tumor") -> dict:
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"classification": {"name": name}}}  # fmt: skip


def write(tmp_path, document) -> object:
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_a_tile_is_positive_when_its_centre_box_overlaps_the_tumour(tmp_path):
    # a 10 px square inside tile (1, 2)'s centre box [224, 256) x [128, 160), and one in tile (0, 0)'s corner
    inside = [[230, 130], [240, 130], [240, 140], [230, 140], [230, 130]]
    corner = [[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]
    annotations = read_annotations(write(tmp_path, {"type": "FeatureCollection",
                                                    "features": [polygon(inside), polygon(corner)]}))  # fmt: skip
    labels = tile_labels(GRID, annotations.tumour)
    assert labels[1, 2] and labels.sum() == 1  # the corner misses (0, 0)'s centre box: negative, as in PCam


def test_touching_the_centre_box_edge_is_not_overlapping(tmp_path):
    touching = [[256, 128], [270, 128], [270, 160], [256, 160], [256, 128]]  # shares the box's right edge
    annotations = read_annotations(write(tmp_path, polygon(touching)))  # one Feature, not a collection
    assert not tile_labels(GRID, annotations.tumour).any()


def test_multipolygons_any_case_of_tumour_and_other_classes(tmp_path):
    features = [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [square(0, 0), square(3, 5)]},
         "properties": {"classification": {"name": "TUMOUR"}}},
        polygon(square(2, 2)[0], name="Stroma"),
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
    ]  # fmt: skip
    annotations = read_annotations(write(tmp_path, features))  # a bare list, as some exports are
    labels = tile_labels(GRID, annotations.tumour)
    assert labels[0, 0] and labels[3, 5] and labels.sum() == 2
    assert tiles_inside(GRID, annotations.union_of(("stroma",))).sum() == 1


@pytest.mark.parametrize(
    "text,words",
    [
        ('{"type": "FeatureCollection", "features": [', "not valid JSON"),
        ('{"type": "Topology"}', "not GeoJSON"),
        ('{"type": "FeatureCollection", "features": 3}', "without a list of features"),
        (
            '{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[1, 2]]}}',
            "unreadable coordinates",
        ),
    ],
)
def test_bad_geojson_is_one_clear_line(tmp_path, text, words):
    with pytest.raises(AnnotationError) as error:
        read_annotations(write(tmp_path, text))
    assert words in str(error.value) and "\n" not in str(error.value) and "a.geojson" in str(error.value)


def test_the_outline_is_the_union_of_the_cells_above_the_threshold():
    cells = np.full(GRID.cell_shape, 0.1, dtype=np.float32)
    cells[0, 0:2] = cells[3, 5] = 0.9  # two pieces: a 2-tile bar and one tile
    features = outline_features(outline_geometry(cells, GRID, 0.5))
    assert sorted(f["properties"]["measurements"]["area_px"] for f in features) == [96.0**2, 2 * 96.0**2]
    assert {f["properties"]["classification"]["name"] for f in features} == {"Tumour"}


def test_every_aggregation_scores_in_the_unit_interval_and_a_lone_tile_weighs_less_when_smoothed():
    lone = np.full((6, 6), 0.05)
    lone[2, 2] = 0.95
    lesion = lone.copy()
    lesion[1:4, 1:4] = 0.95
    lone_scores, lesion_scores = slide_scores(lone, 0.5), slide_scores(lesion, 0.5)
    assert set(lone_scores) == set(AGGREGATIONS) and all(0 <= v <= 1 for v in lone_scores.values())
    assert lone_scores["max"] == lesion_scores["max"] == 0.95
    assert lone_scores["smoothed_max"] < 0.2 < 0.9 < lesion_scores["smoothed_max"]
    assert lone_scores["proportion"] == pytest.approx(1 / 36, abs=1e-6)  # rounded to 6 places
    assert slide_scores(np.full((2, 2), np.nan), 0.5)["max"] == 0.0  # nothing scored


def test_core_heatmap_with_annotations_prints_tile_metrics_and_writes_the_outline(
    tiny_kaggle_model, tmp_path, capsys
):
    cohort = build_cohort(tmp_path / "cohort")
    out = tmp_path / "out"
    code = main(["heatmap", str(tiny_kaggle_model(10)[1]), str(cohort["slides"] / "lesion.png"), "--out", str(out),
                 "--annotations", str(cohort["annotations"] / "lesion.geojson")])  # fmt: skip
    assert code == 0
    assert "12 of 24 tiles tumour" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out / "tile_labels.npy"), cohort["tile_labels"])
    assert json.loads((out / "outlines.geojson").read_text())["type"] == "FeatureCollection"


def test_core_heatmap_refuses_bad_annotations_before_scoring(tiny_kaggle_model, tmp_path, capsys):
    cohort = build_cohort(tmp_path / "cohort")
    bad = write(tmp_path, "not json")
    code = main(["heatmap", str(tiny_kaggle_model(10)[1]), str(cohort["slides"] / "lesion.png"),
                 "--out", str(tmp_path / "out"), "--annotations", str(bad)])  # fmt: skip
    assert code == 2 and "a.geojson: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
