"""Build a cohort of "slides" from the shared real patches, for `core slides` and bench_slides.py.

No whole-slide images are shared here, so each slide is a grid of real 96 x 96 PCam patches at PCam's
0.972 µm/px: an elliptical tissue area of label-0 patches inside a background margin of glass, and
(for tumour slides) one lesion, a connected blob of label-1 patches grown from a random tissue cell.
The lesion sizes decide slide-level aggregation, so the cohort mixes them:

    negative        no lesion
    itc             isolated tumour cells: 1-3 tumour patches
    micro           micro-metastasis: 5-12 patches
    macro           macro-metastasis: 30-60 patches

Patches are `pcamvalid_*` JPEGs (slides the bundled model never trained on until 2026-12-07; the
current baseline trained on them, so with it the cohort measures the mechanics, not unseen slides),
each placed with a random flip and quarter turn. Slides rotate through three formats: PNG (resolution in its dpi), a tiled
pyramidal TIFF with resolution tags, and an Aperio SVS (tiled JPEG, `MPP` in its description) that
OpenSlide reads. Written: slides/<name>.<ext>, labels.csv (slide,label) and annotations/<name>.geojson
(the lesion as a QuPath Polygon/MultiPolygon classified "Tumor"; negative slides get an empty collection).

    python bench/build_cohort.py --out /tmp/patchlens-bench/cohort [--per-kind 9 --rows 16 --cols 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PCAM_JPEG, SCRATCH  # noqa: E402
from core.constants import IMAGE_SIZE, PCAM_MPP  # noqa: E402

LESION_SIZES = {"negative": (0, 0), "itc": (1, 3), "micro": (5, 12), "macro": (30, 60)}
FORMATS = ("png", "tif", "svs")
TILE = 256  # TIFF/SVS tile side


def patch_pool(label: int, rng: np.random.Generator) -> list[Path]:
    paths = sorted((PCAM_JPEG / str(label)).glob("pcamvalid_*.jpg"))
    rng.shuffle(paths)
    return paths


def read_patch(path: Path, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"))
    pixels = np.rot90(pixels, int(rng.integers(4)))
    return np.ascontiguousarray(pixels[:, ::-1] if rng.integers(2) else pixels)


def tissue_cells(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """An irregular ellipse of tissue cells (bool grid) with a margin of glass."""
    y, x = np.indices((rows, cols))
    ry, rx = rows / 2 - 1.2, cols / 2 - 1.2
    wobble = rng.uniform(0.8, 1.0, size=(rows, cols))
    return (((y - (rows - 1) / 2) / ry) ** 2 + ((x - (cols - 1) / 2) / rx) ** 2) <= wobble


def grow_lesion(tissue: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A connected set of `size` tissue cells grown from a random one (4-neighbours)."""
    lesion = np.zeros_like(tissue)
    if not size:
        return lesion
    cells = np.argwhere(tissue)
    lesion[tuple(cells[rng.integers(len(cells))])] = True
    while lesion.sum() < size:
        border = [
            (r + dr, c + dc) for r, c in np.argwhere(lesion) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
            if 0 <= r + dr < tissue.shape[0] and 0 <= c + dc < tissue.shape[1]
            and tissue[r + dr, c + dc] and not lesion[r + dr, c + dc]
        ]  # fmt: skip
        if not border:
            break
        lesion[border[rng.integers(len(border))]] = True
    return lesion


def compose(tissue: np.ndarray, lesion: np.ndarray, pools: dict, rng: np.random.Generator) -> np.ndarray:
    rows, cols = tissue.shape
    image = np.full((rows * IMAGE_SIZE, cols * IMAGE_SIZE, 3), 242, dtype=np.uint8)  # glass
    for r, c in np.argwhere(tissue):
        pool = pools[1] if lesion[r, c] else pools[0]
        patch = read_patch(pool[int(rng.integers(len(pool)))], rng)  # reused patches differ by flip/turn
        image[r * IMAGE_SIZE : (r + 1) * IMAGE_SIZE, c * IMAGE_SIZE : (c + 1) * IMAGE_SIZE] = patch
    return image


def lesion_geojson(lesion: np.ndarray) -> dict:
    import shapely
    from shapely.geometry import mapping

    rows, cols = np.nonzero(lesion)
    features = []
    if rows.size:
        boxes = shapely.box(
            cols * IMAGE_SIZE, rows * IMAGE_SIZE, (cols + 1) * IMAGE_SIZE, (rows + 1) * IMAGE_SIZE
        )
        features.append({"type": "Feature", "geometry": mapping(shapely.union_all(boxes)),
                         "properties": {"objectType": "annotation",
                                        "classification": {"name": "Tumor", "color": [200, 0, 0]}}})  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def write_slide(path: Path, pixels: np.ndarray) -> None:
    import tifffile
    from PIL import Image

    if path.suffix == ".png":
        Image.fromarray(pixels).save(path, dpi=(25400 / PCAM_MPP,) * 2)
        return
    svs = path.suffix == ".svs"
    with tifffile.TiffWriter(path) as writer:
        for level in range(2):
            step = 2**level
            extra = ({"description": f"Aperio Image Library v12.0.0\n{pixels.shape[1]}x{pixels.shape[0]} |MPP = {PCAM_MPP}"}
                     if svs and level == 0 else {})  # fmt: skip
            tags = (
                {} if svs else {"resolution": (1e4 / (PCAM_MPP * step),) * 2, "resolutionunit": "CENTIMETER"}
            )
            writer.write(pixels[::step, ::step], tile=(TILE, TILE), photometric="rgb",
                         compression="zlib", subfiletype=1 if level and not svs else 0,
                         metadata=None, **tags, **extra)  # fmt: skip


def build(out: Path, *, per_kind: int, rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pools = {0: patch_pool(0, rng), 1: patch_pool(1, rng)}
    (out / "slides").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    labels = ["slide,label,kind,lesion_patches,format"]
    n = 0
    for kind, (low, high) in LESION_SIZES.items():
        for k in range(per_kind):
            name, fmt = f"{kind}_{k:02d}", FORMATS[n % len(FORMATS)]
            tissue = tissue_cells(rows, cols, rng)
            lesion = grow_lesion(tissue, int(rng.integers(low, high + 1)), rng)
            write_slide(out / "slides" / f"{name}.{fmt}", compose(tissue, lesion, pools, rng))
            (out / "annotations" / f"{name}.geojson").write_text(json.dumps(lesion_geojson(lesion)))
            labels.append(f"{name},{int(lesion.any())},{kind},{int(lesion.sum())},{fmt}")
            n += 1
    (out / "labels.csv").write_text("\n".join(labels) + "\n")
    print(f"{n} slides of {rows}x{cols} patches in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SCRATCH / "cohort")
    parser.add_argument("--per-kind", type=int, default=9)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    build(args.out, per_kind=args.per_kind, rows=args.rows, cols=args.cols, seed=args.seed)


if __name__ == "__main__":
    main()
