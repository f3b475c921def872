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
from typing import Any

import numpy as np

from core.constants import DEFAULT_THRESHOLD, IMAGE_SIZE, PATCH_SHAPE
from core.data.normalise import normaliser_of
from core.errors import InputError, ModelError, PatchError, PatchLensError
from core.evaluate.cam_models import build_fused_gradcam
from core.evaluate.explain_methods import (  # noqa: F401  (METHODS, METHOD_TITLES: re-exported for callers)
    BATCH_SIZE,
    EXPLANATION_METHODS,
    METHOD_TITLES,
    METHODS,
    REFERENCE_PER_CLASS,
)
from core.evaluate.heatmaps import (  # noqa: F401  (SCALES, DEFAULT_SCALE, Explanation: re-exported for callers)
    DEFAULT_SCALE,
    REFERENCE_PERCENTILE,
    SCALES,
    Explanation,
    normalise,
    on_shared_scale,
    resize_to_patch,
)
from core.evaluate.metrics import check_threshold

DEFAULT_METHOD = "gradcam"
TARGETS = ("tumour", "predicted")
DEFAULT_TARGET = "tumour"

# Activation maps ScoreCAM masks the patch with; each costs one forward pass per patch.
SCORECAM_MAX_N = 32
SMOOTHGRAD_SAMPLES = 20  # noisy copies averaged by SmoothGrad


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
        check_threshold(threshold)
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
        batch, single = _as_batch(patches, self.model)
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
            raise InputError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
        if target not in TARGETS:
            raise InputError(f"Unknown target {target!r}; choose one of: {', '.join(TARGETS)}.")
        if scale not in SCALES:
            raise InputError(f"Unknown scale {scale!r}; choose one of: {', '.join(SCALES)}.")
        threshold = self.threshold if threshold is None else threshold
        check_threshold(threshold)
        batch, single = _as_batch(patches, self.model)
        raw, strengths, probabilities, tumour_wanted = self._raw_explanation(method, batch, target, threshold)
        score_references = self._score_references(method, tumour_wanted) if scale == "shared" else None
        if score_references is None:
            scale, heatmaps, references, score_references = "own", normalise(raw), None, {}
        else:
            names = np.where(tumour_wanted, "tumour", "normal")
            references = np.array([score_references[name] for name in names], dtype=np.float32)
            heatmaps = on_shared_scale(raw, references)
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
        batch, _ = _as_batch(patches, self.model)
        if len(batch) == 0:
            return None
        _, strengths = self._raw_grids(method, batch, np.full(len(batch), tumour))
        reference = float(np.percentile(strengths, REFERENCE_PERCENTILE))
        if not np.isfinite(reference) or reference <= 0.0:
            reference = float(strengths.max())
        return reference if np.isfinite(reference) and reference > 0.0 else None

    def _raw_explanation(self, method: str, batch: np.ndarray, target: str, threshold: float):
        """Raw maps (n, 96, 96), their strengths (n,), P(tumour) (n,) and which score each explains."""
        fused = self._fused_gradcam() if EXPLANATION_METHODS[method].fused else None
        if fused is not None:
            signed, probabilities = self._signed_gradcam(fused, batch)
        else:
            signed, probabilities = None, self._predict(batch)
        tumour_wanted = np.ones(len(batch), dtype=bool) if target == "tumour" else probabilities >= threshold
        grids, strengths = self._raw_grids(method, batch, tumour_wanted, signed=signed)
        return resize_to_patch(grids), strengths, probabilities, tumour_wanted

    def _raw_grids(self, method, batch, tumour_wanted, *, signed=None) -> tuple[np.ndarray, np.ndarray]:
        """Raw maps on the conv grid (non-finite values zeroed) and the maximum of each."""
        fused = self._fused_gradcam() if EXPLANATION_METHODS[method].fused and signed is None else None
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
            return np.asarray(EXPLANATION_METHODS[method].call(self, visualizer, batch, tumour_wanted))

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
                self._visualizers["gradcam-fused"] = build_fused_gradcam(self.model, self.layer)
            return self._visualizers["gradcam-fused"]

    def _visualizer(self, method: str):
        with self._lock:
            if method not in self._visualizers:
                self._visualizers[method] = EXPLANATION_METHODS[method].build(self.model)
            return self._visualizers[method]


def load_reference_patches(per_class: int) -> np.ndarray:
    """The first `per_class` tumour and `per_class` normal patches of the bundled sample.

    Raises PatchLensError when the sample or one of its patches cannot be read.
    """
    from core.data.images import decode_patch
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
    from core.model.architectures import find_last_conv_layer

    return find_last_conv_layer(model)


# --- validation and heatmap arithmetic --------------------------------------------------------


def _as_batch(patches: np.ndarray, model) -> tuple[np.ndarray, bool]:
    """float32 batch (n, 96, 96, 3) of 0-255 values after the model's stain normalisation (if any),
    and whether one patch was given."""
    patches = np.asarray(patches)
    if patches.dtype != np.uint8:
        raise PatchError(f"Patches must be uint8 pixels (0-255); got dtype {patches.dtype}.")
    single = patches.shape == PATCH_SHAPE
    if not single and (patches.ndim != 4 or patches.shape[1:] != PATCH_SHAPE):
        raise PatchError(f"Expected patches of shape (n, 96, 96, 3) or (96, 96, 3); got {patches.shape}.")
    batch = normaliser_of(model).transform(patches[None] if single else patches)
    return batch.astype(np.float32), single
