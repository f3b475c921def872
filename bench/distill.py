"""Self-distillation: fine-tune a copy of a model towards its own 8-view (TTA) prediction.

The bundled model is better with test-time augmentation (the mean over the 8 dihedral views) than in
one pass. This command teaches the single pass what the 8 views say, on the training patches:

1. soft targets = the teacher's mean probability over the 8 dihedral views of each training patch
   (core.evaluate.predict's TTA path), saved as `teacher_tta.npy` in the run folder and reused;
2. the target of a patch = `blend` x its hard label + (1 - blend) x its soft target (binary
   cross-entropy is linear in the target, so this is the blend of the two losses);
3. the student starts from the teacher's weights with its folded temperature taken out (the network
   as it trained), and trains with core train's augmentation (dihedral views, colour jitter, HED
   jitter) and input pipeline, Adam at a constant learning rate, precise BatchNorm before each
   validation, the best one-pass valA AUC kept as `best.keras`;
4. the temperature is refitted on valA and folded in: `model.keras`.

valB takes no part: measure it afterwards with `python -m core evaluate RUN/model.keras
/tmp/unseen/valB --json` (and `--tta`).

    python bench/unseen_slide_split.py /tmp/unseen
    python bench/distill.py /tmp/unseen --out /work/model-runs/distill --epochs 8 --lr 2e-4 --blend 0.5

`--steps N` validates every N batches instead of once a pass (a busy machine: more, smaller rounds),
`--max-minutes M` stops after the first round that ends past M minutes of training, `--limit N` trains
on N patches (a smoke test). Under `--steps`, history.json's `epoch` counts validation rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.augment import AugmentConfig  # noqa: E402
from core.train.config import TrainConfig  # noqa: E402

TEACHER_FILE = "teacher_tta.npy"


def log(out: Path, message: str) -> None:
    """One timestamped line on stdout and in the run's log."""
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(out / "distill.log", "a") as handle:
        handle.write(line + "\n")


def probabilities(model, pixels: np.ndarray, *, tta: bool, batch: int = 256) -> np.ndarray:
    """The model's probabilities for uint8 pixels, in batches (TTA: the mean over the 8 views)."""
    from core.evaluate.predict import predict_patches

    return np.concatenate(
        [predict_patches(model, pixels[i : i + batch], tta=tta) for i in range(0, len(pixels), batch)]
    )


def teacher_targets(teacher_path: Path, train, out: Path) -> np.ndarray:
    """The teacher's 8-view mean probability of every training patch (cached in the run folder)."""
    from core.model.io import load_model
    from core.train.pipeline import load_pixels

    cached = out / TEACHER_FILE
    if cached.exists():
        return np.load(cached)
    log(out, f"teacher: 8-view predictions of {len(train)} training patches")
    soft = probabilities(load_model(teacher_path), load_pixels(train), tta=True)
    np.save(cached, soft)
    return soft


def student(teacher_path: Path):
    """A copy of the teacher with its folded temperature taken out of the final layer."""
    from core.evaluate.calibration import fold_temperature, stored_temperature
    from core.model.io import load_model

    model = load_model(teacher_path)
    fold_temperature(model, 1.0 / stored_temperature(model.patchlens_meta))
    return model


def validation_callback(val_pixels, val_labels, out: Path, history: list, meta: dict, deadline: float):
    """After each epoch (and its precise BatchNorm): one-pass valA AUC, the best kept as best.keras;
    training stops after the first epoch that ends past `deadline` (time.time())."""
    import keras
    from sklearn.metrics import roc_auc_score

    from core.model.io import save_model

    class KeepBest(keras.callbacks.Callback):
        best = -1.0

        def on_epoch_end(self, epoch, logs=None):
            probs = probabilities(self.model, val_pixels, tta=False)
            auc = float(roc_auc_score(val_labels, probs))
            acc = float(((probs >= 0.5) == (val_labels >= 0.5)).mean())
            history.append(
                {"epoch": epoch + 1, "loss": float(logs["loss"]), "valA_auc": auc, "valA_acc": acc}
            )
            log(out, f"epoch {epoch + 1}: loss {logs['loss']:.4f} valA AUC {auc:.4f} acc {acc:.4f}")
            if auc > self.best:
                self.best = auc
                save_model(self.model, out / "best.keras", {**meta, "best_epoch": epoch + 1, "val_auc": auc})
            (out / "history.json").write_text(json.dumps(history, indent=2))
            if time.time() > deadline:
                log(out, "time budget spent: training stops here")
                self.model.stop_training = True

    return KeepBest()


def train(args, data, soft: np.ndarray, out: Path) -> None:
    """Fine-tune the student on the blended targets; best one-pass valA AUC to best.keras."""
    import keras

    from core.train.batch_norm import PRECISE_BN_PATCHES, precise_batch_norm_callback
    from core.train.pipeline import Selection, load_pixels, make_dataset

    keras.utils.set_random_seed(args.seed)
    targets = (args.blend * data.train.labels + (1 - args.blend) * soft).astype(np.float32)
    blended = Selection(parts=data.train.parts, labels=targets, ids=data.train.ids)
    augment = AugmentConfig.with_strength(1.0, hed=args.hed)
    train_ds = make_dataset(
        blended,
        batch_size=args.batch_size,
        shuffle=True,
        augment=augment,
        seed=args.seed,
        repeat=bool(args.steps),
    )
    bn_ds = make_dataset(
        data.train.sample(PRECISE_BN_PATCHES, seed=args.seed), batch_size=args.batch_size, shuffle=False
    )
    tiny_ds = make_dataset(data.val.sample(1, seed=0), batch_size=1, shuffle=False)  # triggers on_test_begin
    model = student(Path(args.teacher))
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="binary_crossentropy")
    meta = {"distill": vars(args) | {"teacher": str(args.teacher)}, "n_train": len(data.train)}
    history: list = []
    deadline = time.time() + 60 * args.max_minutes
    keep = validation_callback(load_pixels(data.val), data.val.labels, out, history, meta, deadline)
    callbacks = [precise_batch_norm_callback(bn_ds), keep]
    model.fit(
        train_ds,
        validation_data=tiny_ds,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        callbacks=callbacks,
        verbose=2,
    )


def calibrate(out: Path, data) -> None:
    """Refit the temperature of best.keras on valA and save it folded in as model.keras."""
    from core.evaluate.calibration import calibrate_model
    from core.model.io import load_model, save_model
    from core.train.pipeline import load_pixels

    model = load_model(out / "best.keras")
    pixels = load_pixels(data.val)
    _, calibration = calibrate_model(model, lambda: probabilities(model, pixels, tta=False), data.val.labels)
    calibration["calibration"]["fitted_on"] = "valA of bench/unseen_slide_split.py"
    meta = {**model.patchlens_meta, **calibration, "temperature": calibration["calibration"]["temperature"]}
    save_model(model, out / "model.keras", meta)
    log(out, f"temperature {calibration['calibration']['temperature']}: {out / 'model.keras'}")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("split", type=Path, help="the folder of bench/unseen_slide_split.py (train/, valA/)")
    parser.add_argument("--teacher", default="models/baseline.keras")
    parser.add_argument("--out", type=Path, required=True, help="the run folder (outside the worktree)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4, help="constant Adam learning rate")
    parser.add_argument("--blend", type=float, default=0.5, help="weight of the hard label in the target")
    parser.add_argument("--hed", type=float, default=0.1, help="HED jitter strength")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="batches between validations (default: one pass over train)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-minutes", type=float, default=600, help="stop after the epoch that ends past this"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many training patches (a smoke test)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    from core.train.data import prepare_data

    args.out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(
        data=[str(args.split / "train")], val_data=str(args.split / "valA"), limit=args.limit
    )
    config = config.validate()
    data = prepare_data(config, report=lambda message: log(args.out, message))
    log(args.out, f"train {len(data.train)}, valA {len(data.val)}; {vars(args)}")
    soft = teacher_targets(Path(args.teacher), data.train, args.out)
    log(
        args.out,
        f"soft targets: mean {soft.mean():.4f}; agree with the label {((soft >= 0.5) == (data.train.labels >= 0.5)).mean():.4f}",
    )
    train(args, data, soft, args.out)
    calibrate(args.out, data)


if __name__ == "__main__":
    main()
