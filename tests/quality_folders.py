"""A class-folders dataset of real sample patches plus made-up non-H&E images, shared by the
Dataset-page quality tests: a solid blue square and a near-blank real patch (normal), a cat-photo
crop and a blurred real patch (tumour), and optionally a file that is not an image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from non_he_images import NON_HE_DIR, blurred
from PIL import Image

from core.data.images import decode_patch
from core.settings import SAMPLE_DATASET

BLANK_ID = "96974eeef9a45bdc6335734620d6c60620a633f0"  # a real sample patch of white background
CAT = NON_HE_DIR / "chelsea_r40_c60.png"
MADE_UP = {"blue": "0", "blank": "0", CAT.stem: "1", "blurred": "1"}  # id -> class folder


def real_rows(n_per_class: int) -> list[tuple[str, str]]:
    rows = [line.split(",") for line in (SAMPLE_DATASET / "train_labels.csv").read_text().splitlines()[1:]]
    rows = [(patch_id, label) for patch_id, label in rows if patch_id != BLANK_ID]
    return [r for r in rows if r[1] == "0"][:n_per_class] + [r for r in rows if r[1] == "1"][:n_per_class]


def mixed_class_folders(folder: Path, n_per_class: int = 8, broken: bool = False) -> Path:
    """Class folders 0/ and 1/ with `n_per_class` real patches each plus the MADE_UP images."""
    for label in ("0", "1"):
        (folder / label).mkdir(parents=True)
    real = real_rows(n_per_class)
    for patch_id, label in real:
        shutil.copy(SAMPLE_DATASET / "train" / f"{patch_id}.tif", folder / label)
    blue = np.zeros((96, 96, 3), dtype=np.uint8)
    blue[..., 2] = 255
    Image.fromarray(blue).save(folder / "0" / "blue.png")
    shutil.copy(SAMPLE_DATASET / "train" / f"{BLANK_ID}.tif", folder / "0" / "blank.tif")
    shutil.copy(CAT, folder / "1" / CAT.name)
    sharp = decode_patch(SAMPLE_DATASET / "train" / f"{real[-1][0]}.tif")
    Image.fromarray(blurred(sharp[None], 2.0)[0]).save(folder / "1" / "blurred.png")
    if broken:
        (folder / "1" / "broken.png").write_text("this is not an image")
    return folder
