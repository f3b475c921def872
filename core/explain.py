"""Why did the model say tumour? Heatmaps through tf-keras-vis, and overlays to show them.

Four methods, all explaining the model's single output (P(tumour)) for a batch of patches:

- "gradcam" (default): gradients of the score at the last conv layer, averaged per channel.
  Fast (one forward + backward pass), coarse (the last conv grid is 6x6 on patchnet).
- "gradcam++": Grad-CAM with higher-order channel weights; better when several regions matter.
- "scorecam": gradient-free; masks the patch with each of the `scorecam_max_n` most varied
  activation maps and weights them by the masked prediction. About 30x slower than Grad-CAM.
- "saliency": SmoothGrad, the pixel gradient averaged over noisy copies; fine but noisy.

The target says which score is explained: "tumour" explains the tumour score whatever the model
predicted; "predicted" explains the class the model chose at the threshold (the tumour score for
patches at or above it, the normal score for the others).

How maps are scaled for display (`scale`). Every method first gives a raw map in its own units
(Grad-CAM: logit per unit of activation); its maximum is the map's *strength*. "shared" (the
default) divides every map by one reference strength per method, score (tumour or normal) and
model: the REFERENCE_PERCENTILE-th percentile of the strengths of that score's maps of real patches
(REFERENCE_PER_CLASS[method] tumour and as many normal patches of the bundled sample), computed
once per Explainer, the first time it is needed. A faint map is then drawn faint. "own" stretches
each map from its own minimum to its own maximum, so the faintest map is drawn as red as the
strongest: on a near-blank patch of the sample (P = 0.004) the bundled baseline's Grad-CAM++ map
is ~200x weaker than on a confident tumour patch, yet that scale drew it as a strong red spot.

Grad-CAM++ in tf-keras-vis multiplies every gradient by exp(score) (the paper's exponential score);
its raw map is divided by that factor here, so its strength is in Grad-CAM's units instead of
growing exponentially with the logit (the map's shape is unchanged).

An `Explainer` is built once per model; the Streamlit pages cache it with `st.cache_resource`.
Each tf-keras-vis visualizer clones the model once, lazily, the first time its method is asked
for. TensorFlow and tf-keras-vis are imported inside the functions, never at module import.
"""

from __future__ import annotations

import csv
import threading
import warnings
from typing import Any, NamedTuple

import numpy as np

from core.constants import CENTRE_BOX, DEFAULT_THRESHOLD, IMAGE_SIZE, PATCH_SHAPE
from core.errors import ModelError, PatchError, PatchLensError

METHODS = ("gradcam", "gradcam++", "scorecam", "saliency")
DEFAULT_METHOD = "gradcam"
TARGETS = ("tumour", "predicted")
DEFAULT_TARGET = "tumour"

# Activation maps ScoreCAM masks the patch with; each costs one forward pass per patch.
SCORECAM_MAX_N = 32
SMOOTHGRAD_SAMPLES = 20  # noisy copies averaged by SmoothGrad
SMOOTHGRAD_NOISE = 0.2  # noise sigma as a fraction of each patch's value range
BATCH_SIZE = 32  # patches explained per tf-keras-vis call, to bound memory

SCALES = ("shared", "own")
DEFAULT_SCALE = "shared"
# The shared scale: this percentile of the map strengths of REFERENCE_PER_CLASS[method] tumour and
# as many normal patches of the bundled sample, per score, is drawn at the top colour. Fewer for the
# slow methods: on the baseline, on 2 busy cores, 32 patches cost ~4 s (Grad-CAM/++), ~30 s
# (SmoothGrad) and ~100 s (Score-CAM) per score.
REFERENCE_PER_CLASS = {"gradcam": 16, "gradcam++": 16, "saliency": 8, "scorecam": 4}
REFERENCE_PERCENTILE = 95

COLORMAPS = ("jet", "inferno", "viridis")
DEFAULT_COLORMAP = "jet"
DEFAULT_ALPHA = 0.4
# White, not the green of core.images: green is in the middle of jet and viridis, white in none.
BOX_COLOUR = (255, 255, 255)


class Explanation(NamedTuple):
    """Heatmaps to draw, the raw maps behind them, and the P(tumour) the model gave each patch.

    heatmaps : float32 in [0, 1], 96x96 each: the raw maps on the display `scale`.
    probabilities : P(tumour) of each patch.
    raw : float32, 96x96 each: the method's map before any scaling (its own units, >= 0).
    strengths : the maximum of each raw map (on the conv grid, before upsampling).
    scale : "shared" or "own" (see the module docstring).
    references : on the shared scale, the raw value drawn at the top colour for each map (the
        reference of the score it explains); None on the "own" scale.
    score_references : on the shared scale, the reference of each score explained, e.g.
        {"tumour": 0.56}; empty on the "own" scale.

    Shapes follow the input: a batch (n, 96, 96, 3) gives heatmaps (n, 96, 96) and
    probabilities (n,); one patch (96, 96, 3) gives one heatmap (96, 96) and a 0-d probability.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    raw: np.ndarray
    strengths: np.ndarray
    scale: str = DEFAULT_SCALE
    references: np.ndarray | None = None
    score_references: dict[str, float] = {}  # noqa: RUF012 - never mutated, NamedTuple default

    def relative_strengths(self) -> np.ndarray | None:
        """Each map's strength as a fraction of its reference; None on the "own" scale."""
        if self.references is None:
            return None
        return np.asarray(self.strengths, dtype=np.float64) / self.references


class Explainer:
    """Heatmaps for one model; build once, call `explain` many times.

    Parameters
    ----------
    model : a loaded PatchLens model (input (N, 96, 96, 3) 0-255, output (N, 1) = P(tumour)).
    threshold : the probability at or above which a patch is predicted tumour; used by
        target="predicted".
    layer : the conv layer Grad-CAM and ScoreCAM read. Default: the name stored with the model
        (`model.patchlens_meta["last_conv_layer"]`), else the last convolutional layer.
    scorecam_max_n, smoothgrad_samples : the cost/quality knobs of ScoreCAM and SmoothGrad.
    reference_patches : uint8 patches (n, 96, 96, 3) that set the shared scale. Default: read
        lazily from the bundled sample (`load_reference_patches`).
    """

    def __init__(
        self,
        model,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        layer: str | None = None,
        scorecam_max_n: int = SCORECAM_MAX_N,
        smoothgrad_samples: int = SMOOTHGRAD_SAMPLES,
        reference_patches: np.ndarray | None = None,
    ) -> None:
        _check_threshold(threshold)
        self.model = model
        self.threshold = float(threshold)
        self.layer = layer or _stored_last_conv_layer(model)
        try:
            channels = int(model.get_layer(self.layer).output.shape[-1])
        except (ValueError, AttributeError, TypeError) as error:
            raise ModelError(f"The model has no layer {self.layer!r} to explain.") from error
        self.scorecam_max_n = max(1, min(int(scorecam_max_n), channels))
        self.smoothgrad_samples = max(1, int(smoothgrad_samples))
        self._visualizers: dict[str, Any] = {}
        # One Explainer is shared by every Streamlit session: build each visualizer once.
        self._lock = threading.Lock()
        self._reference_patches = reference_patches
        self._references: dict[tuple[str, bool], float | None] = {}
        self._reference_lock = threading.Lock()

    def probabilities(self, patches: np.ndarray) -> np.ndarray:
        """P(tumour) for a batch (n, 96, 96, 3) or one patch (96, 96, 3) of uint8 pixels."""
        batch, single = _as_batch(patches)
        probabilities = self._predict(batch)
        return probabilities[0] if single else probabilities

    def explain(
        self,
        patches: np.ndarray,
        method: str = DEFAULT_METHOD,
        target: str = DEFAULT_TARGET,
        *,
        threshold: float | None = None,
        scale: str = DEFAULT_SCALE,
    ) -> Explanation:
        """Heatmaps of where the model looked, one per patch, resized to 96x96, on a display scale.

        Parameters
        ----------
        patches : uint8 pixels, a batch (n, 96, 96, 3) or one patch (96, 96, 3).
        method : one of METHODS.
        target : "tumour" (explain P(tumour)) or "predicted" (explain the predicted class).
        threshold : overrides the Explainer's threshold for target="predicted".
        scale : "shared" (divide by the method's reference strength, clip to [0, 1]) or "own"
            (each map min-max scaled to [0, 1]). Without reference patches "shared" falls back to
            "own", and the Explanation says so.

        Returns
        -------
        Explanation; shapes follow the input (see `Explanation`).
        A map with no spatial variation (e.g. all-zero gradients) comes back as all zeros.
        """
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
        if target not in TARGETS:
            raise ValueError(f"Unknown target {target!r}; choose one of: {', '.join(TARGETS)}.")
        if scale not in SCALES:
            raise ValueError(f"Unknown scale {scale!r}; choose one of: {', '.join(SCALES)}.")
        threshold = self.threshold if threshold is None else threshold
        _check_threshold(threshold)
        batch, single = _as_batch(patches)
        raw, strengths, probabilities, tumour_wanted = self._raw_explanation(method, batch, target, threshold)
        score_references = self._score_references(method, tumour_wanted) if scale == "shared" else None
        if score_references is None:
            scale, heatmaps, references, score_references = "own", _normalise(raw), None, {}
        else:
            names = np.where(tumour_wanted, "tumour", "normal")
            references = np.array([score_references[name] for name in names], dtype=np.float32)
            heatmaps = _on_shared_scale(raw, references)
        if single:
            references = None if references is None else references[0]
            return Explanation(
                heatmaps[0], probabilities[0], raw[0], strengths[0], scale, references, score_references
            )
        return Explanation(heatmaps, probabilities, raw, strengths, scale, references, score_references)

    def reference_strength(self, method: str, tumour: bool = True) -> float | None:
        """The raw value the shared scale draws at the top colour for `method`, computed once.

        The REFERENCE_PERCENTILE-th percentile of the strengths of the reference patches' maps
        for the tumour score (`tumour`) or the normal score. None when no reference patch can be
        read.
        """
        with self._reference_lock:
            if (method, tumour) not in self._references:
                self._references[method, tumour] = self._compute_reference(method, tumour)
            return self._references[method, tumour]

    def _score_references(self, method: str, tumour_wanted: np.ndarray) -> dict[str, float] | None:
        """{"tumour": reference, "normal": reference} for the scores explained; None if one is missing."""
        wanted = {"tumour": True, "normal": False}
        needed = [name for name in wanted if (tumour_wanted == wanted[name]).any()]
        references = {name: self.reference_strength(method, wanted[name]) for name in needed}
        return None if None in references.values() else references

    def _compute_reference(self, method: str, tumour: bool) -> float | None:
        patches = self._reference_patches
        if patches is None:
            try:
                patches = load_reference_patches(REFERENCE_PER_CLASS[method])
            except PatchLensError:
                return None
        batch, _ = _as_batch(patches)
        if len(batch) == 0:
            return None
        _, strengths = self._raw_grids(method, batch, np.full(len(batch), tumour))
        reference = float(np.percentile(strengths, REFERENCE_PERCENTILE))
        if not np.isfinite(reference) or reference <= 0.0:
            reference = float(strengths.max())
        return reference if np.isfinite(reference) and reference > 0.0 else None

    def _raw_explanation(self, method: str, batch: np.ndarray, target: str, threshold: float):
        """Raw maps (n, 96, 96), their strengths (n,), P(tumour) (n,) and which score each explains."""
        fused = self._fused_gradcam() if method == "gradcam" else None
        if fused is not None:
            signed, probabilities = self._signed_gradcam(fused, batch)
        else:
            signed, probabilities = None, self._predict(batch)
        tumour_wanted = np.ones(len(batch), dtype=bool) if target == "tumour" else probabilities >= threshold
        grids, strengths = self._raw_grids(method, batch, tumour_wanted, signed=signed)
        return _resize_to_patch(grids), strengths, probabilities, tumour_wanted

    def _raw_grids(self, method, batch, tumour_wanted, *, signed=None) -> tuple[np.ndarray, np.ndarray]:
        """Raw maps on the conv grid (non-finite values zeroed) and the maximum of each."""
        fused = self._fused_gradcam() if method == "gradcam" and signed is None else None
        if fused is not None:
            signed, _ = self._signed_gradcam(fused, batch)
        chunks = []
        for start in range(0, len(batch), BATCH_SIZE):
            chunk = slice(start, start + BATCH_SIZE)
            if signed is not None:  # the normal score's gradients are the tumour score's, negated
                sign = np.where(tumour_wanted[chunk], 1.0, -1.0).astype(np.float32)[:, None, None]
                chunks.append(np.maximum(signed[chunk] * sign, 0.0))
            else:
                chunks.append(self._raw_maps(method, batch[chunk], tumour_wanted[chunk]))
        grids = np.concatenate(chunks) if chunks else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32)
        grids = np.nan_to_num(grids.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        strengths = grids.max(axis=(1, 2)) if len(grids) else np.zeros(0, dtype=np.float32)
        return grids, strengths.astype(np.float32)

    # --- tf-keras-vis -------------------------------------------------------------------------

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros(0, dtype=np.float32)
        # Calling the model directly: model.predict costs ~50 ms of set-up per call.
        outputs = [
            self.model(batch[i : i + BATCH_SIZE], training=False) for i in range(0, len(batch), BATCH_SIZE)
        ]
        return np.concatenate([np.asarray(out, dtype=np.float32).reshape(-1) for out in outputs])

    def _raw_maps(self, method: str, batch: np.ndarray, tumour_wanted: np.ndarray) -> np.ndarray:
        visualizer = self._visualizer(method)
        with warnings.catch_warnings():
            # tf-keras-vis hands Keras a list for a single-input model; Keras warns, harmlessly.
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            maps = np.asarray(self._call_visualizer(visualizer, method, batch, tumour_wanted))
            if method == "gradcam++":
                maps = _without_exp_score(maps, visualizer.model, batch, tumour_wanted)
        return maps

    def _call_visualizer(self, visualizer, method, batch, tumour_wanted):
        from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

        if method in ("gradcam", "gradcam++"):
            return visualizer(
                BinaryScore(tumour_wanted.tolist()),
                batch,
                penultimate_layer=self.layer,
                seek_penultimate_conv_layer=False,  # the layer is known; skip the search
                expand_cam=False,  # we upsample ourselves, cell-centre aligned
                normalize_cam=False,  # and normalise ourselves, safely for constant maps
            )
        if method == "scorecam":
            # Class index in the two-logit view built by `_two_class_logits`: 0 normal, 1 tumour.
            return visualizer(
                CategoricalScore(tumour_wanted.astype(int).tolist()),
                batch,
                penultimate_layer=self.layer,
                seek_penultimate_conv_layer=False,
                max_N=self.scorecam_max_n,
                batch_size=BATCH_SIZE,
                expand_cam=False,
                normalize_cam=False,
            )
        return visualizer(
            BinaryScore(tumour_wanted.tolist()),
            batch,
            smooth_samples=self.smoothgrad_samples,
            smooth_noise=SMOOTHGRAD_NOISE,
            normalize_map=False,
        )

    def _signed_gradcam(self, fused, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, probabilities = [], []
        for start in range(0, len(batch), BATCH_SIZE):
            signed, probs = fused(batch[start : start + BATCH_SIZE].astype(np.float32))
            maps.append(np.asarray(signed, dtype=np.float32))
            probabilities.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        return np.concatenate(maps), np.concatenate(probabilities)

    def _fused_gradcam(self):
        """Grad-CAM and P(tumour) in one compiled forward + backward pass, or None.

        The same arithmetic as tf-keras-vis's Gradcam with ReplaceToLinear (gradients of the
        logit at the target layer, averaged per channel, weighting its maps), without its per-call
        Python overhead: ~10x faster for one patch (bench/profile_hotpaths.py). Used when the
        layers after the target layer form a simple chain ending in a sigmoid Dense, as in every
        registered architecture; other models go through tf-keras-vis. Returns the signed map
        (before the ReLU), so one pass serves the tumour and the normal score.
        """
        with self._lock:
            if "gradcam-fused" not in self._visualizers:
                self._visualizers["gradcam-fused"] = _build_fused_gradcam(self.model, self.layer)
            return self._visualizers["gradcam-fused"]

    def _visualizer(self, method: str):
        with self._lock:
            if method not in self._visualizers:
                self._visualizers[method] = self._build_visualizer(method)
            return self._visualizers[method]

    def _build_visualizer(self, method: str):
        """Each visualizer clones the model and swaps the sigmoid for a linear output, so scores
        are logits: a saturated sigmoid (P = 0.999) would otherwise give vanishing gradients."""
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        if method == "gradcam":
            from tf_keras_vis.gradcam import Gradcam

            return Gradcam(self.model, model_modifier=ReplaceToLinear(), clone=True)
        if method == "gradcam++":
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

            return GradcamPlusPlus(self.model, model_modifier=ReplaceToLinear(), clone=True)
        if method == "saliency":
            from tf_keras_vis.saliency import Saliency

            return Saliency(self.model, model_modifier=ReplaceToLinear(), clone=True)
        from tf_keras_vis.scorecam import Scorecam

        scorecam = Scorecam(
            self.model,
            model_modifier=[ReplaceToLinear(), _two_class_logits],
            clone=True,
        )
        # Scorecam calls model.predict once per chunk; silence its progress bar (CLI output).
        predict = scorecam.model.predict
        scorecam.model.predict = lambda *args, **kwargs: predict(*args, **{**kwargs, "verbose": 0})
        return scorecam


def _chain_after(model, layer_name: str):
    """The layers after `layer_name` if each one feeds only on the previous one, else None."""
    layers = model.layers
    index = [layer.name for layer in layers].index(layer_name)
    head = layers[index + 1 :]
    previous = layers[index]
    for layer in head:
        if len(getattr(layer, "_inbound_nodes", [])) != 1 or layer.input is not previous.output:
            return None
        previous = layer
    return head if head and previous is layers[-1] else None


def _build_fused_gradcam(original, layer_name: str):
    import keras
    import tensorflow as tf

    # Work on a copy: a sub-model on the original's layers would add graph nodes that break the
    # tf-keras-vis visualizers built from the same model later.
    model = keras.models.clone_model(original)
    head = _chain_after(model, layer_name)
    if head is None:
        return None
    model.set_weights(original.get_weights())
    output = head[-1]
    activation = getattr(getattr(output, "activation", None), "__name__", "")
    if not isinstance(output, keras.layers.Dense) or activation != "sigmoid":
        return None
    conv_model = keras.Model(model.inputs, model.get_layer(layer_name).output)

    @tf.function(input_signature=[tf.TensorSpec((None, *PATCH_SHAPE), tf.float32)])
    def fused(x):
        conv = conv_model(x, training=False)
        with tf.GradientTape() as tape:
            tape.watch(conv)
            h = conv
            for layer in head[:-1]:
                h = layer(h, training=False)
            h = tf.cast(h, output.kernel.dtype)
            logit = tf.matmul(h, output.kernel) + output.bias  # the sigmoid layer, made linear
            score = tf.reduce_sum(logit)
        gradients = tape.gradient(score, conv)
        weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
        signed = tf.reduce_sum(tf.cast(weights, conv.dtype) * conv, axis=-1)
        return signed, tf.sigmoid(logit)[:, 0]

    return fused


def _without_exp_score(maps: np.ndarray, linear_model, batch: np.ndarray, tumour_wanted) -> np.ndarray:
    """Grad-CAM++ maps divided by exp(score), the factor tf-keras-vis multiplies them by.

    tf-keras-vis scales every gradient by exp(score) (score = the logit for the tumour score, minus
    it for the normal score); the alphas cancel it, so the map is exactly exp(score) times the
    map of the score itself. `linear_model` is the visualizer's copy with a linear output.
    """
    logits = np.asarray(linear_model(batch, training=False), dtype=np.float64).reshape(-1)
    scores = np.where(tumour_wanted, logits, -logits)
    return (maps.astype(np.float64) * np.exp(-scores)[:, None, None]).astype(np.float32)


def _two_class_logits(model):
    """The one-logit model z seen as two classes with logits (0, z).

    tf-keras-vis ScoreCAM applies a softmax to the model output before scoring. On a (N, 1)
    output that softmax is always 1, so every activation map would get the same weight whatever
    the patch. Softmax of (0, z) is (1 - sigmoid(z), sigmoid(z)) = (P(normal), P(tumour)): the
    weights become the masked patches' class probabilities, as ScoreCAM intends.
    """
    import keras

    logit = model.outputs[0]
    both = keras.ops.concatenate([keras.ops.zeros_like(logit), logit], axis=-1)
    return keras.Model(model.inputs, both, name=f"{model.name}_two_class")


def load_reference_patches(per_class: int) -> np.ndarray:
    """The first `per_class` tumour and `per_class` normal patches of the bundled sample.

    Raises PatchLensError when the sample or one of its patches cannot be read.
    """
    from core.images import decode_patch
    from core.settings import SAMPLE_DATASET

    try:
        with open(SAMPLE_DATASET / "train_labels.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error) as error:
        raise PatchLensError(f"The bundled sample cannot be read: {error}") from error
    ids = [row["id"] for row in rows if row.get("label") == "1"][:per_class]
    ids += [row["id"] for row in rows if row.get("label") == "0"][:per_class]
    return np.stack([decode_patch(SAMPLE_DATASET / "train" / f"{i}.tif") for i in ids])


def _stored_last_conv_layer(model) -> str:
    meta = getattr(model, "patchlens_meta", None) or {}
    if meta.get("last_conv_layer"):
        return str(meta["last_conv_layer"])
    from core.models import find_last_conv_layer

    return find_last_conv_layer(model)


# --- validation and heatmap arithmetic --------------------------------------------------------


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]; got {threshold}.")


def _as_batch(patches: np.ndarray) -> tuple[np.ndarray, bool]:
    """float32 batch (n, 96, 96, 3) of 0-255 values, and whether one patch was given."""
    patches = np.asarray(patches)
    if patches.dtype != np.uint8:
        raise PatchError(f"Patches must be uint8 pixels (0-255); got dtype {patches.dtype}.")
    single = patches.shape == PATCH_SHAPE
    if not single and (patches.ndim != 4 or patches.shape[1:] != PATCH_SHAPE):
        raise PatchError(f"Expected patches of shape (n, 96, 96, 3) or (96, 96, 3); got {patches.shape}.")
    batch = patches[None] if single else patches
    return batch.astype(np.float32), single


def _resize_to_patch(maps: np.ndarray) -> np.ndarray:
    """Conv-grid maps (n, h, w) -> (n, 96, 96), bilinear.

    Each grid cell's value sits at the centre of the 96/h px it covers (scipy's grid_mode).
    tf-keras-vis's own expansion aligns the corners instead, which shifts the outer cells by
    half a cell (8 px on patchnet's 6x6 grid) and would misplace heat around the centre box.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
        return maps
    from scipy.ndimage import zoom

    factors = (1.0, IMAGE_SIZE / maps.shape[1], IMAGE_SIZE / maps.shape[2])
    return zoom(maps, factors, order=1, grid_mode=True, mode="nearest")


def _on_shared_scale(maps: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Raw maps (n, h, w) divided by their reference strengths (n,) and clipped to [0, 1]."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    divisors = np.asarray(references, dtype=np.float32).reshape(-1, 1, 1)
    return np.clip(maps / divisors, 0.0, 1.0).astype(np.float32)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each map to [0, 1]; a constant (or non-finite) map becomes all zeros."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    flat = span <= 1e-12
    scaled = (maps - low) / np.where(flat, 1.0, span)
    return np.clip(np.where(flat, 0.0, scaled), 0.0, 1.0).astype(np.float32)


# --- overlays -----------------------------------------------------------------------------------

# Colormaps as numpy lookup tables (no matplotlib). Jet: matplotlib's own piecewise-linear
# definition, (position, value) per channel. Inferno and viridis: the 10 evenly spaced anchor
# colours published with the maps (as in R's viridisLite), interpolated linearly.
_JET_SEGMENTS = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)
_ANCHORS = {
    "inferno": "000004 1B0C42 4B0C6B 781C6D A52C60 CF4446 ED6925 FB9A06 F7D03C FCFFA4",
    "viridis": "440154 482878 3E4A89 31688E 26828E 1F9E89 35B779 6DCD59 B4DE2C FDE725",
}


def colormap_table(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """The 256-entry lookup table of a colormap: uint8 (256, 3), index 0 = heat 0."""
    if name not in COLORMAPS:
        raise ValueError(f"Unknown colormap {name!r}; choose one of: {', '.join(COLORMAPS)}.")
    positions = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        channels = [np.interp(positions, *zip(*segment)) * 255.0 for segment in _JET_SEGMENTS]
    else:
        anchors = np.array(
            [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name].split()],
            dtype=float,
        )
        stops = np.linspace(0.0, 1.0, len(anchors))
        channels = [np.interp(positions, stops, anchors[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A heatmap in [0, 1] (H, W) as uint8 RGB colours (H, W, 3)."""
    heatmap = _check_heatmap(heatmap)
    indices = np.rint(heatmap * 255.0).astype(np.intp)
    return colormap_table(colormap)[indices]


def overlay(
    patch: np.ndarray,
    heatmap: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    alpha: float = DEFAULT_ALPHA,
    draw_box: bool = True,
    box_colour: tuple[int, int, int] = BOX_COLOUR,
) -> np.ndarray:
    """The patch with its heatmap blended on top: uint8 (96, 96, 3).

    `alpha` is the heatmap's weight (0 = patch only, 1 = colours only). With `draw_box`, the
    outline of the labelled centre 32x32 px is drawn one pixel outside it, so no pixel that
    decides the label is hidden.
    """
    patch = np.asarray(patch)
    if patch.dtype != np.uint8 or patch.shape != PATCH_SHAPE:
        raise PatchError(f"Expected a uint8 patch of shape (96, 96, 3); got {patch.shape}, {patch.dtype}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
    heatmap = _check_heatmap(heatmap)
    if heatmap.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"Expected a heatmap of shape (96, 96); got {heatmap.shape}.")
    colours = colorize(heatmap, colormap).astype(np.float32)
    blended = np.rint((1.0 - alpha) * patch.astype(np.float32) + alpha * colours)
    result = np.clip(blended, 0, 255).astype(np.uint8)
    if draw_box:
        left, top, right, bottom = CENTRE_BOX
        result[top - 1, left - 1 : right + 1] = box_colour
        result[bottom, left - 1 : right + 1] = box_colour
        result[top - 1 : bottom + 1, left - 1] = box_colour
        result[top - 1 : bottom + 1, right] = box_colour
    return result


def _check_heatmap(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"Expected one 2-D heatmap; got shape {heatmap.shape}.")
    return np.clip(np.nan_to_num(heatmap, nan=0.0), 0.0, 1.0)


# --- saying how maps are scaled -----------------------------------------------------------------

COLOUR_BAR_HEIGHT = 10  # px of colour in a colour bar; the labels go in a white band below it
LABEL_BAND_HEIGHT = 14


def colour_bar(colormap: str = DEFAULT_COLORMAP, *, width: int = 192, height: int = COLOUR_BAR_HEIGHT):
    """A horizontal strip of the colormap, heat 0 at the left, heat 1 at the right: uint8 (h, w, 3)."""
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return colorize(ramp, colormap)


def labelled_colour_bar(colormap: str, low_label: str, high_label: str, *, width: int = 192) -> np.ndarray:
    """The colour bar with `low_label` under its left end and `high_label` under its right end."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (width, LABEL_BAND_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    draw.text((1, 1), low_label, fill=(0, 0, 0))
    right = draw.textlength(high_label)
    draw.text((max(width - right - 1, 0), 1), high_label, fill=(0, 0, 0))
    return np.concatenate([colour_bar(colormap, width=width), np.asarray(band)], axis=0)


def scale_labels(explanation: Explanation) -> tuple[str, str]:
    """What the two ends of the colour bar stand for."""
    if explanation.references is None:
        return "map's min", "map's max"
    references = np.unique(np.asarray(explanation.references))
    return "0", (f"{references[0]:.3g} or more" if len(references) == 1 else "reference or more")


def describe_scale(explanation: Explanation, method_name: str) -> str:
    """A sentence or two on how the heatmaps of `explanation` were scaled for display."""
    if explanation.references is None:
        return (
            f"Each {method_name} map is stretched to its own range (its weakest value at the left of "
            "the colour bar, its strongest at the right), so a faint map looks as hot as a strong "
            "one: compare the strengths, not the colours."
        )
    references = ", ".join(
        f"{score} score {value:.3g}" for score, value in explanation.score_references.items()
    )
    return (
        f"Shared scale: each {method_name} map is divided by a reference strength ({references}: the "
        f"{REFERENCE_PERCENTILE}th percentile of the map strengths of reference patches of the bundled "
        "sample, tumour and normal, for this model), so the right end of the colour bar is that "
        "reference or more, and a faint map stays faint. Strength = a map's raw maximum."
    )


def describe_strength(strength: float, reference: float | None) -> str:
    """A map's strength (its raw maximum), and its share of its reference when there is one."""
    if reference is None:
        return f"strength {float(strength):.3g}"
    return f"strength {float(strength):.3g} ({float(strength) / float(reference):.0%} of the reference)"
