"""One scoring loop, before and after: the three streamed passes of the code before core.evaluate.score
(loaded from git at --before) against today's, on real patches, interleaved in one process.

Figures (patches/s of wall time and patches per CPU second of the process, which a busy shared machine
disturbs far less; median of --repeats runs; the two versions alternate which goes first):
  predict_dataset(quality=True)   what a prediction job runs (gate + OOD verdict in the forward pass)
  compute_features                what a features job runs (features + gate)
  heatmap score (scoring phase)   a region image made of the same patches, quality gate on
on the PCam-valid JPEGs (`pcamvalid_*` of ../shared/data/pcam-jpeg, slides no model here saw), with
models/baseline.keras. Every run also checks that both versions gave the same arrays bit for bit.

Usage: /work/main/.venv/bin/python bench/bench_scoring.py [--repeats 3] [--quick] [--before REV] [--patches N]
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
from common import PCAM_JPEG, PROJECT_DIR, SCRATCH, log, median, parser, report, spread, table, timed

BEFORE = "892e024"  # the last commit with three scoring loops
OLD_MODULES = {
    "predict": "core/evaluate/predict.py",
    "features": "core/diagnose/features.py",
    "heatmap": "core/region/heatmap.py",
}
PCAM_MPP = 0.972


def old_module(name: str, path: str, revision: str):
    """The module at `path` as it was at `revision`, imported under the name before_<name>."""
    source = subprocess.check_output(["git", "-C", str(PROJECT_DIR), "show", f"{revision}:{path}"], text=True)
    file = SCRATCH / "scoring-before" / f"{name}.py"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(f"before_{name}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def pcam_valid(limit: int | None) -> object:
    """A class-folder dataset of symlinks to the pcamvalid_* JPEGs, `limit` of them (half per class) or
    all (made once under SCRATCH)."""
    from core.data.dataset import open_dataset

    root = SCRATCH / f"pcamvalid-{limit or 'all'}"
    if not root.exists():
        tmp = root.with_name(root.name + ".tmp")
        for label in ("0", "1"):
            (tmp / label).mkdir(parents=True, exist_ok=True)
            names = sorted(p for p in (PCAM_JPEG / label).iterdir() if p.name.startswith("pcamvalid_"))
            for path in names[: limit // 2 if limit else None]:
                (tmp / label / path.name).symlink_to(path)
        os.replace(tmp, root)
    return open_dataset(root)


def region_image(dataset) -> str:
    """A PNG at PCam's resolution tiling every patch of the dataset, row by row (made once)."""
    from PIL import Image

    path = SCRATCH / f"pcamvalid-mosaic-{len(dataset)}.png"
    if not path.exists():
        cols = int(np.ceil(np.sqrt(len(dataset))))
        rows = -(-len(dataset) // cols)
        canvas = np.full((rows * 96, cols * 96, 3), 255, np.uint8)
        for k in range(len(dataset)):
            r, c = divmod(k, cols)
            canvas[r * 96 : (r + 1) * 96, c * 96 : (c + 1) * 96] = dataset.read_patch(k)
        Image.fromarray(canvas).save(path.with_suffix(".tmp.png"), dpi=(25400 / PCAM_MPP,) * 2)
        os.replace(path.with_suffix(".tmp.png"), path)
    return str(path)


def same(before, after, kind: str) -> None:
    """Bit-identical outputs of the two versions, or an AssertionError naming what differs."""
    if kind == "predict":
        assert before.equals(after) and before.attrs["skipped"] == after.attrs["skipped"], "predictions"
    elif kind == "features":
        np.testing.assert_array_equal(before.features, after.features)
        np.testing.assert_array_equal(before.probs, after.probs)
        assert before.quality == after.quality and before.ids == after.ids, "features"
    else:
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_array_equal(before[1], after[1])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--before", default=BEFORE, help="the git revision of the code before the one loop")
    p.add_argument("--patches", type=int, default=None, help="this many pcamvalid_* patches (default: all)")
    args = p.parse_args()
    os.environ["PATCHLENS_HOME"] = str(SCRATCH / "scoring-workspace")  # the hashes cache goes here
    from bench_predict import load_bench_model

    from core.diagnose.features import compute_features
    from core.evaluate.predict import predict_dataset
    from core.region.heatmap import prepare, score

    old = {name: old_module(name, path, args.before) for name, path in OLD_MODULES.items()}
    model, model_name = load_bench_model()
    dataset = pcam_valid(300 if args.quick else args.patches)
    plan = prepare(region_image(dataset))
    tiles = int(plan.tissue.sum())
    passes = {
        "predict": (len(dataset), lambda m: m.predict_dataset(model, dataset, quality=True)),
        "features": (len(dataset), lambda m: m.compute_features(model, dataset)),
        "heatmap": (tiles, lambda m: m.score(model, plan)),
    }
    new = {"predict": sys.modules[predict_dataset.__module__], "features": sys.modules[compute_features.__module__],
           "heatmap": sys.modules[score.__module__]}  # fmt: skip
    warm = pcam_valid(32)  # traces the forward passes (both versions share them: cached on the model)
    predict_dataset(model, warm, quality=True), compute_features(model, warm)
    rates: dict[tuple[str, str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for kind, (n, run) in passes.items():
            order = ("before", "after") if repeat % 2 == 0 else ("after", "before")
            outputs = {}
            for version in order:
                module = (old if version == "before" else new)[kind]
                cpu = time.process_time()
                seconds, outputs[version] = timed(lambda module=module, run=run: run(module))
                cpu = time.process_time() - cpu
                rates.setdefault((kind, version, "wall"), []).append(n / seconds)
                rates.setdefault((kind, version, "cpu"), []).append(n / cpu)
                log(
                    f"run {repeat + 1} {kind} {version}: {n / seconds:,.1f} patches/s, {n / cpu:,.1f} per CPU s"
                )
            same(outputs["before"], outputs["after"], kind)  # every run: the same arrays, bit for bit
    plan.image.close()
    rows = []
    for kind, (n, _) in passes.items():
        for unit in ("wall", "cpu"):
            before, after = rates[(kind, "before", unit)], rates[(kind, "after", unit)]
            ratios = [a / b for a, b in zip(after, before, strict=True)]
            rows.append([kind, n, "patches/s" if unit == "wall" else "patches per CPU s",
                         f"{median(before):,.1f} ({spread(before)})", f"{median(after):,.1f} ({spread(after)})",
                         f"{median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"])  # fmt: skip
    body = table(["pass", "patches", "rate", "before", "after", "after ÷ before (per run)"], rows)
    notes = [
        f"model: {model_name}; data: {len(dataset):,} pcamvalid_* JPEGs of ../shared/data/pcam-jpeg (class "
        f"folders of symlinks); heatmap: a {plan.grid.shape[0]}x{plan.grid.shape[1]} tile PNG of the same "
        f"patches at 0.972 µm/px, {tiles:,} tissue tiles, scoring phase only (`score`, the plan made once).",
        f"before = {args.before} (three loops), loaded from git into the same process; after = the working tree. "
        "Each run times both versions back to back, the first alternating; both gave bit-identical arrays.",
    ]
    report("One scoring loop: before and after (bench/bench_scoring.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
