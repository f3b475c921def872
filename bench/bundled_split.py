"""Build the data the bundled model's last phase trains on: every shared labelled patch outside
`data/sample` but a held-out 1,000, and the starting run it continues.

Issue 23: once a recipe is chosen on the unseen-slide proxy (bench/unseen_slide_split.py), the
bundled model trains on every shared labelled patch. This writes

  OUT/kaggle-train/  links to the Kaggle TIFFs outside data/sample and outside kaggle-val (1,329)
                     + their train_labels.csv
  OUT/kaggle-val/    links to 1,000 of the Kaggle TIFFs outside data/sample (seeded)
                     + their train_labels.csv: the best epoch and the temperature are chosen here
  OUT/start/         a run folder to `--resume`: config.json (train on every PCam JPEG and
                     kaggle-train, validate on kaggle-val, the baseline recipe) and best.keras = the
                     bundled model with its folded temperature taken out, saved as after epoch 36

so that the last phase of the recipe (models/README.md, "Reproduce it") runs on all of it:

    python bench/bundled_split.py /tmp/bundled
    python -m core train --resume /tmp/bundled/start --epochs 48 --swa-epochs 12 --out RUN

data/sample takes no part in training or in any choice: it stays the bundled figure. PCam valid
(valA and valB of the proxy split) is trained on, so the proxy can no longer be measured on the
result; its proxy figure is the recipe's proxy run (the model this one starts from).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from common import KAGGLE_SAMPLE, PCAM_JPEG

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.augment import AugmentConfig  # noqa: E402
from core.train.config import TrainConfig  # noqa: E402

SEED = 0
HELD_OUT = 1_000
START_EPOCH = 36  # the recipe's first phase ran 36 epochs; the last phase continues after them


def kaggle_ids(folder: Path) -> dict[str, str]:
    """{id: label} of a Kaggle-layout folder's CSV."""
    with open(folder / "train_labels.csv", newline="") as handle:
        return {row["id"]: row["label"] for row in csv.DictReader(handle)}


def write_kaggle(out: Path, labels: dict[str, str], ids: list[str]) -> None:
    """A Kaggle-layout folder of links to the shared TIFFs of `ids`, with its CSV."""
    (out / "train").mkdir(parents=True, exist_ok=True)
    with open(out / "train_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        for patch_id in ids:
            writer.writerow([patch_id, labels[patch_id]])
            link = out / "train" / f"{patch_id}.tif"
            if not link.exists():
                link.symlink_to(KAGGLE_SAMPLE / "train" / f"{patch_id}.tif")


def split_kaggle(out: Path, sample: Path) -> tuple[int, int]:
    """kaggle-train/ and kaggle-val/: the Kaggle TIFFs outside `sample`, 1,000 of them held out."""
    labels = kaggle_ids(KAGGLE_SAMPLE)
    outside = sorted(set(labels) - set(kaggle_ids(sample)))
    order = list(np.random.default_rng(SEED).permutation(outside))
    write_kaggle(out / "kaggle-val", labels, sorted(order[:HELD_OUT]))
    write_kaggle(out / "kaggle-train", labels, sorted(order[HELD_OUT:]))
    return len(order) - HELD_OUT, HELD_OUT


def write_start(out: Path, model_path: Path) -> None:
    """start/: the recipe's configuration on all the data, and the model to continue as best.keras."""
    from core.evaluate.calibration import fold_temperature, stored_temperature
    from core.model.io import load_model, save_model

    config = TrainConfig(
        data=[str(PCAM_JPEG), str(out / "kaggle-train")],
        val_data=str(out / "kaggle-val"),
        architecture="patchnet",
        epochs=START_EPOCH,
        learning_rate=1e-3,
        schedule="cosine",
        augment=AugmentConfig.with_strength(1.0, hed=0.1),
        seed=SEED,
    ).validate()
    (out / "start").mkdir(parents=True, exist_ok=True)
    (out / "start" / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    model = load_model(model_path)
    fold_temperature(model, 1.0 / stored_temperature(model.patchlens_meta))  # the network as it trained
    meta = {"epoch": START_EPOCH, "continues": str(model_path), "architecture": "patchnet"}
    save_model(model, out / "start" / "best.keras", meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write kaggle-train/, kaggle-val/ and start/ into")
    parser.add_argument("--model", type=Path, default=Path("models/baseline.keras"))
    parser.add_argument("--sample", type=Path, default=Path("data/sample"))
    args = parser.parse_args()
    trained, held = split_kaggle(args.out, args.sample)
    write_start(args.out, args.model)
    print(f"kaggle-train: {trained:,}; kaggle-val: {held:,}; start: {args.out / 'start'}")


if __name__ == "__main__":
    main()
