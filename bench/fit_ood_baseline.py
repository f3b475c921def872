"""Fit the out-of-distribution statistics of the bundled baseline once, store them in
models/baseline.keras, and measure the flag rates of the whole input-quality gate with it.

What it does, in the order of core/train/job.py's own fit (core.model.ood):
  1. fit: the penultimate features of FIT_PATCHES (4,096) random training patches of the baseline
     (the shared real patches minus the 1,000 of data/sample, exactly the baseline's training
     data, un-augmented) → class means + Ledoit-Wolf covariance;
  2. calibrate: the threshold = THRESHOLD_PERCENTILE of the distances of data/sample, the
     baseline's validation set (never trained on);
  3. rewrite models/baseline.keras atomically with the statistics (the weights and the Keras
     entries are copied byte for byte) and check that the model's predictions on data/sample are
     unchanged bit for bit;
  4. measure with the rewritten model: flag rates on the shared real patches (target: ≤ 5 % get
     not_he, blurred or out_of_distribution) and on non-H&E families (target: ≥ 95 % get some flag):
     the made-up ones of tests/non_he_images.py, the crops of tests/data/non_he/ and scikit-image's
     photos when --photos holds them (see bench/calibrate_quality.py).

Usage: /work/main/.venv/bin/python bench/fit_ood_baseline.py [--quick] [--per-family 300] [--dry-run]
           [--train-prefix pcamtrain_] [--held-out DIR [DIR ...]]
  --dry-run measures with the statistics in memory and leaves models/baseline.keras alone.
  --train-prefix / --held-out: for a baseline trained on bench/unseen_slide_split.py's train/ (fit on
  pcamtrain_* only; threshold on valA and data/sample, so both JPEGs and TIFFs set it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from common import BUNDLED_SAMPLE, KAGGLE_SAMPLE, PCAM_JPEG, PROJECT_DIR, log, parser, report, table

sys.path.insert(0, str(PROJECT_DIR / "tests"))
from calibrate_quality import families  # noqa: E402

from core.data import quality  # noqa: E402
from core.data.dataset import open_dataset  # noqa: E402
from core.model import ood  # noqa: E402

BASELINE = PROJECT_DIR / "models" / "baseline.keras"
BATCH = 256


def read_all(path: Path, limit: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    dataset = open_dataset(path)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return list(dataset.ids[:n]), dataset.read_batch(range(n)), np.asarray(dataset.labels[:n])


def gate(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """{flag: (n,) bool} of the whole gate (image flags + the model's) and the distances."""
    masks = {name: [] for name in quality.QUALITY_FLAGS}
    distances = []
    for start in range(0, len(x), BATCH):
        batch = x[start : start + BATCH]
        report_ = quality.assess(batch)
        scored = ood.score_patches(model, batch)
        for name in quality.IMAGE_FLAGS:
            masks[name].append(report_.masks[name])
        masks[quality.OUT_OF_DISTRIBUTION].append(scored.out_of_distribution)
        distances.append(scored.distances)
    out = {name: np.concatenate(parts) for name, parts in masks.items()}
    out["distance"] = np.concatenate(distances)
    return out


def percent(mask: np.ndarray) -> str:
    return f"{int(mask.sum()):,} ({100 * mask.mean():.2f} %)"


def real_row(name: str, m: dict[str, np.ndarray]) -> list:
    model_flags = m["not_he"] | m["blurred"] | m["out_of_distribution"]
    return [
        name,
        len(m["distance"]),
        percent(m["out_of_distribution"]),
        percent(m["not_he"] | m["blurred"]),
        percent(model_flags),
        percent(model_flags | m["background"]),
        f"{np.median(m['distance']):.1f}",
    ]


def family_row(name: str, m: dict[str, np.ndarray]) -> list:
    image = m["background"] | m["not_he"] | m["blurred"]
    return [
        name,
        len(m["distance"]),
        f"{100 * m['out_of_distribution'].mean():.1f} %",
        f"{100 * image.mean():.1f} %",
        f"{100 * (image | m['out_of_distribution']).mean():.1f} %",
        f"{np.median(m['distance']):.1f}",
    ]


def rewrite_baseline(stats: ood.OODStats, sample_x: np.ndarray) -> str:
    """Write the statistics into a copy, check it, then replace models/baseline.keras atomically."""
    from core.evaluate.predict import predict_patches
    from core.model.io import load_model

    before = predict_patches(load_model(BASELINE), sample_x)
    fd, tmp = tempfile.mkstemp(suffix=".keras", prefix=".baseline-", dir=BASELINE.parent)
    os.close(fd)
    try:
        shutil.copyfile(BASELINE, tmp)
        ood.write_ood_stats(tmp, stats)
        with zipfile.ZipFile(BASELINE) as old, zipfile.ZipFile(tmp) as new:
            for name in old.namelist():
                if name not in ("patchlens.json", ood.OOD_ENTRY):  # the two entries this rewrites
                    assert old.read(name) == new.read(name), f"{name} changed"
        after = predict_patches(load_model(tmp), sample_x)
        assert np.array_equal(before, after), "predictions changed"
        os.replace(tmp, BASELINE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return (
        f"models/baseline.keras rewritten: every Keras entry byte-identical, predictions on the "
        f"{len(sample_x):,} sample patches equal bit for bit (np.array_equal) before and after."
    )


def main() -> None:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--per-family", type=int, default=300, help="images per made-up family")
    arguments.add_argument("--photos", type=Path, default=Path("/tmp/skimage-data"), help="scikit-image data")
    arguments.add_argument("--dry-run", action="store_true", help="leave models/baseline.keras alone")
    arguments.add_argument(
        "--train-prefix",
        default="",
        help="fit only on shared patches whose id starts with this (pcamtrain_ for a baseline trained on "
        "bench/unseen_slide_split.py's train/); default: every shared patch not held out",
    )
    arguments.add_argument(
        "--held-out",
        nargs="+",
        type=Path,
        default=[BUNDLED_SAMPLE],
        help="labelled datasets the model never trained on; the threshold is their distances' percentile "
        "(default data/sample)",
    )
    args = arguments.parse_args()
    args.repeats = 1
    from core.model.io import load_model

    limit = 1500 if args.quick else None
    sample_ids, sample_x, _ = read_all(BUNDLED_SAMPLE)
    held_out_sets = [read_all(path) for path in args.held_out]
    held_out = {i for part in held_out_sets for i in part[0]} | set(sample_ids)
    calibration_x = np.concatenate([part[1] for part in held_out_sets])
    shared = {
        name: read_all(path, limit)
        for name, path in (("Kaggle TIFF", KAGGLE_SAMPLE), ("PCam JPEG", PCAM_JPEG))
    }
    log(f"read {len(sample_x):,} sample and {sum(len(v[0]) for v in shared.values()):,} shared patches")
    ids = [i for v in shared.values() for i in v[0]]
    x = np.concatenate([v[1] for v in shared.values()])
    y = np.concatenate([v[2] for v in shared.values()])
    training = np.flatnonzero([i not in held_out and i.startswith(args.train_prefix) for i in ids])
    rng = np.random.default_rng(0)
    fitted = np.sort(rng.permutation(training)[: ood.FIT_PATCHES])

    model = load_model(BASELINE)
    start = time.perf_counter()
    stats = ood.fit_ood_stats(model, x[fitted], y[fitted], calibration_x)
    fit_seconds = time.perf_counter() - start
    log(
        f"fitted on {stats.n_fit:,}, calibrated on {stats.n_calibration:,} in {fit_seconds:.1f} s: {stats.summary()}"
    )
    if args.quick or args.dry_run:
        rewrite_note = "models/baseline.keras left alone (--quick/--dry-run); statistics measured in memory."
        ood.attach_ood_stats(model, stats)
    else:
        rewrite_note = rewrite_baseline(stats, sample_x)
        model = load_model(BASELINE)
        assert ood.model_ood_stats(model) is not None
    log(rewrite_note)

    # real patches
    real = gate(model, x)
    not_fitted = np.ones(len(x), bool)
    not_fitted[fitted] = False
    offset, rows = 0, []
    for name, (part_ids, _, _) in shared.items():
        part = slice(offset, offset + len(part_ids))
        rows.append(real_row(name, {k: v[part] for k, v in real.items()}))
        offset += len(part_ids)
    rows.append(real_row("all shared", real))
    rows.append(real_row("shared, not among the fitted", {k: v[not_fitted] for k, v in real.items()}))
    if (
        args.train_prefix
    ):  # shared patches of slides the model never trained on, and not used for the threshold
        unseen = np.array([not i.startswith(args.train_prefix) and i not in held_out for i in ids])
        rows.append(
            real_row("shared, never trained on nor held out", {k: v[unseen] for k, v in real.items()})
        )
    for path, part in zip(args.held_out, held_out_sets):
        if Path(path).resolve() != BUNDLED_SAMPLE.resolve():
            rows.append(real_row(f"{Path(path).name} (held out; the threshold's own)", gate(model, part[1])))
    sample = gate(model, sample_x)
    in_threshold = any(Path(path).resolve() == BUNDLED_SAMPLE.resolve() for path in args.held_out)
    sample_role = "held out; the threshold's own" if in_threshold else "never trained on"
    rows.append(real_row(f"data/sample ({sample_role})", sample))
    real_table = table(
        [
            "real patches",
            "n",
            "out_of_distribution",
            "not_he or blurred",
            "not_he, blurred or ood (target ≤ 5 %)",
            "any flag (with background)",
            "median distance",
        ],
        rows,
    )
    log("measured the real patches")

    # non-H&E families
    image_ok = ~(real["background"] | real["not_he"] | real["blurred"])
    made = families(
        x[image_ok], x, np.random.default_rng(0), 50 if args.quick else args.per_family, args.photos
    )
    made_gates = {name: gate(model, images) for name, images in made.items()}
    rows = [family_row(name, m) for name, m in made_gates.items()]
    targeted = [name for name in made_gates if not name.startswith("(informative)")]
    pooled = {k: np.concatenate([made_gates[f][k] for f in targeted]) for k in made_gates[targeted[0]]}
    rows.append(family_row("all targeted families", pooled))
    made_table = table(
        [
            "non-H&E images",
            "n",
            "out_of_distribution",
            "some image flag",
            "some flag (target ≥ 95 %)",
            "median distance",
        ],
        rows,
    )
    log("measured the non-H&E families")

    body = "\n\n".join(
        [
            "Statistics stored in models/baseline.keras: "
            + ", ".join(f"`{k} = {v}`" for k, v in stats.summary().items() if k != "method"),
            f"Fitting them (features of {stats.n_fit:,} + {stats.n_calibration:,} patches and the covariance) "
            f"took {fit_seconds:.1f} s on this CPU.",
            real_table,
            made_table,
        ]
    )
    notes = [
        "method: " + ood.METHOD + " (Lee et al. 2018); threshold = the "
        f"{stats.percentile:g}th percentile of the distances of the held-out patches: "
        + ", ".join(str(path) for path in args.held_out)
        + ".",
        f"fitted on {stats.n_fit:,} random training patches of the baseline (shared data minus the held-out "
        f"patches{', ids starting ' + args.train_prefix if args.train_prefix else ''}, seed 0).",
        "most shared patches are the baseline's own training patches: the rate on slides it never saw "
        "will be higher than on these (the threshold is set on held-out patches of the same slides).",
        rewrite_note,
        f"non-H&E: {50 if args.quick else args.per_family} images a family (seed 0), as in bench/calibrate_quality.py; "
        "the blurred / IHC-recoloured families start from real shared patches the image checks pass.",
    ]
    report("Out-of-distribution flag of the bundled baseline (bench/fit_ood_baseline.py)", body, args, notes)


if __name__ == "__main__":
    main()
