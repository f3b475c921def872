"""Build the unseen-slide proxy split the bundled baseline is trained and measured on.

PCam's README states that its train and valid splits share no slide, and a shared JPEG's name says
which split it came from (`pcamtrain_*`, `pcamvalid_*`; see ../shared/data/README.md). So:

  OUT/train/{0,1}/  every `pcamtrain_*` JPEG (18,838)                        — the training set
  OUT/valA/{0,1}/   half of the `pcamvalid_*` JPEGs, per class (1,453)       — best epoch + temperature
  OUT/valB/{0,1}/   the other half (1,454)                                   — the reported proxy figure

valA and valB come from slides the model never trains on; valB is also never used to choose or
calibrate anything. The Kaggle TIFFs (data/sample among them) stay out of training: which slides
they come from is unknown, so they could share slides with valB. The folders hold symbolic links
to the shared files (nothing is copied; the project never links to them).

Usage: python bench/unseen_slide_split.py OUT   (seeded: the same halves every time)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from common import PCAM_JPEG

SEED = 0


def split(out: Path, source: Path = PCAM_JPEG) -> dict[str, list[int]]:
    """Write the three folders of links; returns {folder: [normal, tumour] counts}."""
    rng = np.random.default_rng(SEED)
    counts: dict[str, list[int]] = {}
    for label in ("0", "1"):
        names = sorted(os.listdir(source / label))
        valid = list(rng.permutation([n for n in names if n.startswith("pcamvalid_")]))
        half = len(valid) // 2
        parts = {
            "train": [n for n in names if n.startswith("pcamtrain_")],
            "valA": valid[:half],
            "valB": valid[half:],
        }
        for folder, chosen in parts.items():
            (out / folder / label).mkdir(parents=True, exist_ok=True)
            for name in chosen:
                link = out / folder / label / name
                if not link.exists():
                    link.symlink_to(source / label / name)
            counts.setdefault(folder, []).append(len(chosen))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write train/, valA/ and valB/ into")
    for folder, (normal, tumour) in split(parser.parse_args().out).items():
        print(f"{folder}: {normal:,} normal + {tumour:,} tumour")


if __name__ == "__main__":
    main()
