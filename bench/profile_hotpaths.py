"""Three hot paths the other benchmarks pointed at, each timed against a candidate fix (not in core).

  augmentation   core.model.augment.augment_batch on a float32 batch of 64, per component; the dihedral
                 part (three tf.where with a (B,1,1,1) mask over full images) vs one tf.gather
                 through a table of the 8 dihedral pixel orders
  Grad-CAM       Explainer.explain(patch, "gradcam") and its parts (the eager forward pass for the
                 probability; the eager tf-keras-vis call) vs one tf.function computing the same
                 map (checked equal to tf-keras-vis's raw map)
  colour stats   core.data.stats.colour_statistics's per-chunk reductions over (B, 9216, 3)
                 float32 (strided axis) vs the same reductions on a planar (B, 3, 9216) copy

Usage: /work/venv/bin/python bench/profile_hotpaths.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np
from common import BUNDLED_SAMPLE, PROJECT_DIR, log, median, parser, report, table

BATCH = 64


def per_call_ms(function, calls: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return 1000 * (time.perf_counter() - start) / calls


def dihedral_by_table():
    """augment's dihedral step as one gather: 8 precomputed pixel orders, one chosen per patch."""
    import tensorflow as tf

    grid = np.arange(96 * 96).reshape(96, 96)
    orders = []
    for transposed in (False, True):
        g = grid.T if transposed else grid
        for flip_h in (False, True):
            for flip_v in (False, True):
                v = g[:, ::-1] if flip_h else g
                orders.append((v[::-1, :] if flip_v else v).reshape(-1))
    table_ = tf.constant(np.stack(orders).astype(np.int32))

    @tf.function
    def apply(x, seed):
        n = tf.shape(x)[0]
        which = tf.random.stateless_uniform([n], seed=seed, minval=0, maxval=8, dtype=tf.int32)
        flat = tf.reshape(x, [n, 96 * 96, 3])
        return tf.reshape(tf.gather(flat, tf.gather(table_, which), batch_dims=1), [n, 96, 96, 3])

    return apply


def compiled_gradcam(model, layer_name: str):
    """Grad-CAM of the tumour logit at `layer_name`, as one tf.function (what tf-keras-vis computes
    with ReplaceToLinear, expand_cam=False, normalize_cam=False)."""
    import keras
    import tensorflow as tf

    layer = model.get_layer(layer_name)
    head = model.layers[model.layers.index(layer) + 1 :]
    conv_model = keras.Model(model.inputs, layer.output)

    @tf.function(input_signature=[tf.TensorSpec((None, 96, 96, 3), tf.float32)])
    def gradcam(x):
        conv = conv_model(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(conv)
            h = conv
            for part in head:
                if isinstance(part, keras.layers.Dense):  # the sigmoid output, as a linear logit
                    h = tf.matmul(h, part.kernel) + part.bias
                else:
                    h = part(h, training=False)
            score = tf.reduce_sum(h)
        grads = tape.gradient(score, conv)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))

    return gradcam


def colour_current(batch):
    pixels = batch.reshape(len(batch), -1, 3).astype(np.float32)
    return pixels.mean(axis=1), pixels.std(axis=1), ((pixels > 220).all(axis=2)).mean(axis=1) > 0.8


def colour_planar(batch):
    planar = np.ascontiguousarray(batch.reshape(len(batch), -1, 3).transpose(0, 2, 1)).astype(np.float32)
    blank = (batch > 220).all(axis=3).reshape(len(batch), -1).mean(axis=1) > 0.8
    return planar.mean(axis=2), planar.std(axis=2), blank


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    calls = 3 if args.quick else 10
    import tensorflow as tf

    from core.data.dataset import open_dataset
    from core.evaluate.explain import Explainer
    from core.model.architectures import build_model
    from core.model.augment import AugmentConfig, augment_batch
    from core.model.io import load_model
    from core.settings import BASELINE_MODEL

    dataset = open_dataset(BUNDLED_SAMPLE)
    pixels = dataset.read_batch(range(256))
    x = tf.constant(pixels[:BATCH].astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    none = AugmentConfig(dihedral=False, brightness=0, contrast=0, saturation=0, hue=0)
    augment_variants = {
        "augment_batch, AugmentConfig() (default)": AugmentConfig(),
        "dihedral only (3 × tf.where over the batch)": replace(none, dihedral=True),
        "brightness only": replace(none, brightness=0.1),
        "contrast only": replace(none, contrast=0.2),
        "saturation only": replace(none, saturation=0.2),
        "hue only": replace(none, hue=0.04),
    }
    augment_fns = {
        name: tf.function(lambda a, s, c=config: augment_batch(a, s, c))
        for name, config in augment_variants.items()
    }
    table_fn = dihedral_by_table()
    augment_fns["dihedral by one gather (suggested)"] = table_fn
    no_dihedral = tf.function(lambda a, s: augment_batch(a, s, replace(AugmentConfig(), dihedral=False)))
    augment_fns["default, dihedral by one gather (suggested)"] = tf.function(
        lambda a, s: no_dihedral(table_fn(a, s), s)
    )

    model = load_model(BASELINE_MODEL) if BASELINE_MODEL.exists() else build_model("patchnet", seed=0)
    model_name = "models/baseline.keras" if BASELINE_MODEL.exists() else "untrained patchnet"
    explainer = Explainer(model)
    patch = pixels[0]
    one = patch[None].astype(np.float32)
    fast_cam = compiled_gradcam(model, explainer.layer)
    batch8 = pixels[:8].astype(np.float32)
    reference = explainer._raw_maps("gradcam", batch8, np.ones(8, dtype=bool))
    difference = float(
        np.abs(fast_cam(batch8).numpy() - reference).max() / max(np.abs(reference).max(), 1e-12)
    )
    cam_fns = {
        "Explainer.explain(patch, 'gradcam')": lambda: explainer.explain(patch, "gradcam"),
        "↳ its probability: eager model(x)": lambda: explainer._predict(patch[None]),
        "↳ its map: tf-keras-vis Gradcam (eager)": lambda: explainer._raw_maps(
            "gradcam", one, np.ones(1, dtype=bool)
        ),
        "one tf.function Grad-CAM map (suggested)": lambda: fast_cam(one).numpy(),
    }
    colour_fns = {
        "colour reductions, (B, 9216, 3) float32 (current)": lambda: colour_current(pixels),
        "colour reductions, planar (B, 3, 9216) (suggested)": lambda: colour_planar(pixels),
    }
    times: dict[str, list[float]] = {}
    for run in range(args.repeats):
        for name, fn in augment_fns.items():
            times.setdefault(name, []).append(per_call_ms(lambda fn=fn: fn(x, seed).numpy(), calls))
        for name, fn in {**cam_fns, **colour_fns}.items():
            times.setdefault(name, []).append(per_call_ms(fn, calls))
        log(f"run {run + 1}/{args.repeats} done")
    m = {name: median(v) for name, v in times.items()}

    def rows(names, reference_name):
        return [[name, f"{m[name]:.1f}", f"{m[name] / m[reference_name]:.2f}"] for name in names]

    body = "Augmentation, one float32 batch of 64 (ms per batch):\n\n" + table(
        ["step", "ms", "÷ default augment_batch"],
        rows(augment_fns, "augment_batch, AugmentConfig() (default)"),
    )
    body += "\n\nGrad-CAM of one patch (ms per call):\n\n" + table(
        ["step", "ms", "÷ Explainer.explain"], rows(cam_fns, "Explainer.explain(patch, 'gradcam')")
    )
    body += "\n\nDataset page colour statistics, one chunk of 256 patches (ms):\n\n" + table(
        ["step", "ms", "÷ current"], rows(colour_fns, "colour reductions, (B, 9216, 3) float32 (current)")
    )
    notes = [
        f"{calls} calls per figure a run after one warm-up call; tf.function traced before timing.",
        f"Grad-CAM model: {model_name}; the one-tf.function map equals tf-keras-vis's raw map to a relative "
        f"{difference:.1e} (8 patches).",
        "The suggested variants are sketches in this script, not in core.",
    ]
    report("Hot paths and candidate fixes (bench/profile_hotpaths.py)", body, args, notes)


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
