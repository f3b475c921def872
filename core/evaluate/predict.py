"""Run a model over patches: a whole dataset in streamed batches, or a few patches for the page.

Speed comes from three things. The forward pass is one compiled `tf.function` per model (fixed
input signature, so it is traced once), not `model.predict`, whose per-call set-up dominates
small batches. A producer thread reads and decodes the next batch while the model runs the
current one. Only two batches of pixels exist at any time, so memory stays bounded on the
220,025-patch Kaggle set. The streamed pass over a dataset is the one scoring loop's
(core.evaluate.score); `predict_dataset` only collects its rows.

Test-time augmentation (TTA) averages the probability over the 8 dihedral views of a patch (4
rotations x optional mirror): a tissue patch has no preferred orientation, so all 8 are equally
valid looks at it. The average is invariant to flipping or rotating the input. How much the 8
views disagree (their spread, core.evaluate.uncertainty) comes out of the same passes: TTA
predictions of a dataset carry it as a column, and `score_stack` gives it for the uploads.

The cache of predictions on disk is core.evaluate.predictions'.

TensorFlow is imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

import numpy as np
import pandas as pd

from core.constants import PATCH_SHAPE, SCORING_BATCH_SIZE
from core.data.hashes import UNREADABLE, patch_hashes, store_dataset_hashes
from core.data.normalise import normaliser_of
from core.errors import InputError
from core.evaluate.score import Outputs, dataset_batches, score_batches
from core.evaluate.uncertainty import SPREAD_COLUMN, view_spread
from core.model.features import as_patch_batch, compiled_scores
from core.model.ood import model_ood_stats

DEFAULT_BATCH_SIZE = SCORING_BATCH_SIZE

Progress = Callable[[int, int], None]

_COMPILED_ATTRIBUTE = "_patchlens_compiled_predict"
_VIEWS = "views"  # the cache key of the per-view function, next to the True/False of `tta`


# --------------------------------------------------------------------------- the forward pass


def _dihedral_views(x):
    """The 8 rotations/mirrors of a (n, 96, 96, 3) batch."""
    import tensorflow as tf

    mirrored = tf.reverse(x, axis=[2])  # left-right flip
    return [tf.image.rot90(view, k) for view in (x, mirrored) for k in range(4)]


def _compiled(model, key, build: Callable) -> Callable:
    """The traced function `key` of this model, built once by `build(signature)` and cached on the
    model object, so repeated calls (e.g. from a Streamlit page) reuse one trace and the trace is
    freed with the model."""
    import tensorflow as tf

    functions = getattr(model, _COMPILED_ATTRIBUTE, None)
    if functions is None:
        functions = {}
        object.__setattr__(model, _COMPILED_ATTRIBUTE, functions)  # bypass Keras tracking
    if key not in functions:
        functions[key] = build([tf.TensorSpec(shape=(None, *PATCH_SHAPE), dtype=tf.float32)])
    return functions[key]


def compiled_views(model) -> Callable:
    """A traced-once function (n, 96, 96, 3) float32 -> ((n,) the 8-view mean probability, computed
    as `compiled_predict(model, tta=True)` computes it, and (n, 8) the probability of each view)."""
    import tensorflow as tf

    def build(signature):
        @tf.function(input_signature=signature, reduce_retracing=True)
        def views(x):
            each = [model(view, training=False) for view in _dihedral_views(x)]
            return tf.reshape(tf.add_n(each) / len(each), [-1]), tf.concat(each, axis=1)

        return views

    return _compiled(model, _VIEWS, build)


def compiled_predict(model, *, tta: bool = False) -> Callable:
    """A traced-once function (n, 96, 96, 3) float32 -> (n,) float32 probabilities (with `tta`, the
    mean over the 8 dihedral views)."""
    import tensorflow as tf

    def build(signature):
        if tta:

            @tf.function(input_signature=signature, reduce_retracing=True)
            def forward(x):
                views = [model(view, training=False) for view in _dihedral_views(x)]
                return tf.reshape(tf.add_n(views) / len(views), [-1])

        else:

            @tf.function(input_signature=signature, reduce_retracing=True)
            def forward(x):
                return tf.reshape(model(x, training=False), [-1])

        return forward

    return _compiled(model, bool(tta), build)


def predict_patches(model, patches: np.ndarray, *, tta: bool = False) -> np.ndarray:
    """Tumour probabilities of one patch (96, 96, 3) or a stack (n, 96, 96, 3), values 0-255.

    Returns a float32 array of shape (n,) (n = 1 for a single patch).
    """
    patches = as_patch_batch(patches)
    if len(patches) == 0:
        return np.empty(0, dtype=np.float32)
    forward = compiled_predict(model, tta=tta)
    patches = normaliser_of(model).transform(patches)  # the model's stain normalisation, if any
    return forward(patches.astype(np.float32, copy=False)).numpy()


def predict_patches_spread(model, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-view mean probability (as `predict_patches(..., tta=True)`) and the spread of the 8
    views (core.evaluate.uncertainty) of one patch or a stack, values 0-255: two (n,) arrays."""
    patches = as_patch_batch(patches)
    if len(patches) == 0:
        return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float64)
    pixels = normaliser_of(model).transform(patches).astype(np.float32, copy=False)
    mean, views = compiled_views(model)(pixels)
    return mean.numpy(), view_spread(views.numpy())


def score_stack(
    model, patches: np.ndarray, *, tta: bool = False, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(probabilities, out-of-distribution verdicts, spread of the 8 views) of a few patches in memory
    (values 0-255; the Predict page's uploads), from the forward pass a dataset gets: the verdicts None
    for a model without OOD statistics, the spread None without `tta`."""
    patches = as_patch_batch(patches)
    if len(patches) == 0:
        return np.empty(0, np.float32), None, (np.empty(0) if tta else None)
    forward = forward_pass(model, tta=tta, ood=True)
    pixels = normaliser_of(model).transform(patches)
    batches = [
        forward(pixels[i : i + batch_size].astype(np.float32, copy=False))
        for i in range(0, len(pixels), batch_size)
    ]
    # one tuple per output (probabilities, features, distances, verdicts, spread), joined over batches
    joined = [None if column[0] is None else np.concatenate(column) for column in zip(*batches)]
    return joined[0], joined[3], joined[4]


def forward_pass(
    model, *, tta: bool = False, features: bool = False, ood: bool = False
) -> Callable[[np.ndarray], Outputs]:
    """float32 pixels -> (probabilities, features, OOD distances, OOD verdicts, spread of the 8 views),
    what was not asked for (or a model without OOD statistics cannot give) None. Probabilities alone
    run the plain compiled model; the features' extractor runs only when needed. With `tta` the
    probability is the 8 views' mean and the spread theirs (core.evaluate.uncertainty)."""
    stats = model_ood_stats(model) if ood else None
    if tta:
        return _views_pass(model, features=features, stats=stats)
    if not features and stats is None:
        predict = compiled_predict(model)
        return lambda pixels: (predict(pixels).numpy(), None, None, None, None)
    scores = compiled_scores(model)

    def run(pixels: np.ndarray) -> Outputs:
        probs, found = scores(pixels)
        return (probs.numpy(), *_feature_outputs(found.numpy(), features, stats), None)

    return run


def _views_pass(model, *, features: bool, stats) -> Callable[[np.ndarray], Outputs]:
    """The TTA forward pass: the 8 views' mean and spread; the features and the out-of-distribution
    check from the patch as given (one pass more), the view the statistics were taken on."""
    views = compiled_views(model)
    scores = compiled_scores(model) if features or stats is not None else None

    def run(pixels: np.ndarray) -> Outputs:
        mean, each = views(pixels)
        found = (
            (None, None, None)
            if scores is None
            else _feature_outputs(scores(pixels)[1].numpy(), features, stats)
        )
        return (mean.numpy(), *found, view_spread(each.numpy()))

    return run


def _feature_outputs(found: np.ndarray, features: bool, stats) -> tuple:
    """(features if asked, OOD distances, OOD verdicts) of the penultimate features `found`."""
    if stats is None:
        return (found if features else None), None, None
    distances = stats.distances(found)
    return (found if features else None), distances, distances > stats.threshold


# --------------------------------------------------------------------------- a whole dataset


def predict_dataset(
    model,
    dataset,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tta: bool = False,
    progress: Progress | None = None,
    quality: bool = False,
    first_batch: int | None = None,
) -> pd.DataFrame:
    """Predict every patch of a dataset in streamed batches.

    Parameters
    ----------
    model : a Keras model following the PatchLens contract (core.model.io.load_model).
    dataset : a core.data.dataset.Dataset (any layout; labels may be None).
    batch_size : patches per forward pass; memory holds about two batches of pixels.
    tta : average over the 8 dihedral views (8x the compute), and keep their spread.
    progress : optional callable(done, total), called after each batch.
    quality : also run the input-quality gate (core.data.quality) on the same pixels, and the
        model's out-of-distribution check (core.model.ood) in the same forward pass when the model
        carries its statistics.
    first_batch : score only this many patches in the first batch, so the first `progress` after
        the first batch comes sooner (a page's job); the predictions are the same.

    Returns
    -------
    DataFrame with columns id, label (float, NaN when unlabelled) and prob, in dataset order,
    plus `quality` ('ok' or the flags joined by ';') when asked for, and with `tta` the spread of
    the 8 views (`tta_spread`, core.evaluate.uncertainty).
    Patches that cannot be decoded are left out and listed in `frame.attrs["skipped"]`
    ({id: reason}), so one corrupt file never sinks a 220,000-patch run.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size}.")
    skipped: dict[str, str] = {}
    source = dataset_batches(dataset, int(batch_size), skipped=skipped, first=first_batch)
    scored = score_batches(
        model, source, forward=forward_pass(model, tta=tta, ood=quality), total=len(dataset), quality=quality,
        progress=progress, name="patch-reader",
    )  # fmt: skip
    index, probs, spreads, qualities, hashes = _collect_scored(scored, len(dataset))
    frame = _prediction_frame(dataset, index, probs)
    if quality:
        frame["quality"] = qualities
    if tta:  # how much the 8 views disagree (core.evaluate.uncertainty)
        frame[SPREAD_COLUMN] = np.concatenate(spreads) if spreads else np.empty(0)
    frame.attrs["skipped"] = skipped
    store_dataset_hashes(dataset, hashes)  # so Evaluate counts the training overlap without a re-read
    return frame


def _collect_scored(scored, total: int) -> tuple[np.ndarray, np.ndarray, list, list[str], np.ndarray]:
    """Drain the scoring loop: the kept patches' dataset indices and probabilities, their batches' TTA
    spreads and quality labels, in order, and every patch's content hash (UNREADABLE where unread)."""
    kept_index: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    spreads: list[np.ndarray] = []
    qualities: list[str] = []
    hashes = np.full(total, UNREADABLE, dtype=np.uint64)  # the pixels' content, for overlap
    with closing(scored):
        for batch in scored:
            hashes[batch.where] = patch_hashes(batch.pixels)
            kept_index.append(batch.where)
            probs.append(batch.probs)
            spreads.append(batch.spread)
            qualities.extend(batch.quality_labels or [])
    index = np.concatenate(kept_index) if kept_index else np.empty(0, dtype=np.int64)
    prob = np.concatenate(probs).astype(np.float64) if probs else np.empty(0)
    return index, prob, spreads, qualities, hashes


def _prediction_frame(dataset, index: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """The id, label (NaN when unlabelled) and prob columns of the kept patches."""
    labels = dataset.labels
    return pd.DataFrame(
        {
            "id": [dataset.ids[i] for i in index],
            "label": (
                labels[index].astype(np.float64) if labels is not None else np.full(len(index), np.nan)
            ),
            "prob": probs,
        }
    )
