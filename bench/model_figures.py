"""Every figure of a candidate bundled model, each from `python -m core evaluate MODEL DATA --json`.

The figures models/README.md and models/baseline.json quote, on the data of bench/unseen_slide_split.py:
valB (unseen slides, the proxy; with and without TTA), valA (the selection and temperature set), all
PCam valid (valA + valB), data/sample and all 3,329 shared Kaggle TIFFs. Written as JSON {name: the
evaluate --json output}, so a model swap updates baseline.json from one file.

With `--bundled DIR` (bench/bundled_split.py's folder) also kaggle-val, the selection and temperature
set of a model trained on every shared patch, with and without TTA.

Usage: /work/main/.venv/bin/python bench/model_figures.py MODEL --split /tmp/unseen --out FIGURES.json
           [--bundled /tmp/bundled]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import BUNDLED_SAMPLE, KAGGLE_SAMPLE, PROJECT_DIR, SCRATCH, log


def evaluate(model: Path, data: Path, tta: bool) -> dict:
    """The metrics `python -m core evaluate` prints as JSON for MODEL on DATA at 0.5."""
    command = [sys.executable, "-m", "core", "evaluate", str(model), str(data), "--json"]
    output = subprocess.run(command + (["--tta"] if tta else []), cwd=PROJECT_DIR, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(output[output.index("{") :])


def all_valid(split: Path) -> Path:
    """valA and valB together as one class-folder dataset of links (all 2,907 PCam-valid patches)."""
    out = SCRATCH / "all-pcamvalid"
    for part in ("valA", "valB"):
        for label in ("0", "1"):
            (out / label).mkdir(parents=True, exist_ok=True)
            for image in (split / part / label).iterdir():
                link = out / label / image.name
                if not link.exists():
                    link.symlink_to(image.resolve())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--split", type=Path, default=Path("/tmp/unseen"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bundled", type=Path, default=None, help="bench/bundled_split.py's folder")
    args = parser.parse_args()
    data = {
        "valB": (args.split / "valB", False),
        "valB_tta": (args.split / "valB", True),
        "valA": (args.split / "valA", False),
        "all_pcamvalid": (all_valid(args.split), False),
        "sample": (BUNDLED_SAMPLE, False),
        "sample_tta": (BUNDLED_SAMPLE, True),
        "kaggle_tiffs": (KAGGLE_SAMPLE, False),
    }
    if args.bundled:
        data |= {
            "kaggle_val": (args.bundled / "kaggle-val", False),
            "kaggle_val_tta": (args.bundled / "kaggle-val", True),
        }
    figures = {}
    for name, (folder, tta) in data.items():
        figures[name] = evaluate(args.model.resolve(), folder, tta)
        log(f"{name}: AUC {figures[name]['auc']:.4f} accuracy {figures[name]['accuracy']:.4f}")
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
