"""The explanation methods core.evaluate.explain offers, as one table (EXPLANATION_METHODS): each a
tf-keras-vis visualizer, built once per Explainer and then called per batch. A new method is one
entry in the table plus its build and call functions; the CLI's and the pages' method lists derive
from it (METHODS, METHOD_TITLES). TensorFlow and tf-keras-vis are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.evaluate.cam_models import two_class_logits, without_exp_score

BATCH_SIZE = 32  # patches explained per tf-keras-vis call, to bound memory
SMOOTHGRAD_NOISE = 0.2  # noise sigma as a fraction of each patch's value range


class Settings(Protocol):
    """What a method's call reads of its core.evaluate.explain.Explainer."""

    layer: str  # the target conv layer
    scorecam_max_n: int  # activation maps Score-CAM masks the patch with
    smoothgrad_samples: int  # noisy copies SmoothGrad averages


# Each visualizer clones the model and swaps the sigmoid for a linear output, so scores are logits: a
# saturated sigmoid (P = 0.999) would otherwise give vanishing gradients.


def _linear_output():
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    return ReplaceToLinear()


def _build_gradcam(model):
    from tf_keras_vis.gradcam import Gradcam

    return Gradcam(model, model_modifier=_linear_output(), clone=True)


def _build_gradcam_plus_plus(model):
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

    return GradcamPlusPlus(model, model_modifier=_linear_output(), clone=True)


def _build_saliency(model):
    from tf_keras_vis.saliency import Saliency

    return Saliency(model, model_modifier=_linear_output(), clone=True)


def _build_scorecam(model):
    from tf_keras_vis.scorecam import Scorecam

    scorecam = Scorecam(model, model_modifier=[_linear_output(), two_class_logits], clone=True)
    # Scorecam calls model.predict once per chunk; silence its progress bar (CLI output).
    predict = scorecam.model.predict
    scorecam.model.predict = lambda *args, **kwargs: predict(*args, **{**kwargs, "verbose": 0})
    return scorecam


def _call_cam(explainer: Settings, visualizer, batch: np.ndarray, tumour_wanted: np.ndarray):
    from tf_keras_vis.utils.scores import BinaryScore

    return visualizer(
        BinaryScore(tumour_wanted.tolist()),
        batch,
        penultimate_layer=explainer.layer,
        seek_penultimate_conv_layer=False,  # the layer is known; skip the search
        expand_cam=False,  # we upsample ourselves, cell-centre aligned
        normalize_cam=False,  # and normalise ourselves, safely for constant maps
    )


def _call_cam_plus_plus(explainer: Settings, visualizer, batch: np.ndarray, tumour_wanted: np.ndarray):
    maps = np.asarray(_call_cam(explainer, visualizer, batch, tumour_wanted))
    return without_exp_score(maps, visualizer.model, batch, tumour_wanted)


def _call_scorecam(explainer: Settings, visualizer, batch: np.ndarray, tumour_wanted: np.ndarray):
    from tf_keras_vis.utils.scores import CategoricalScore

    # Class index in the two-logit view built by `two_class_logits`: 0 normal, 1 tumour.
    return visualizer(
        CategoricalScore(tumour_wanted.astype(int).tolist()),
        batch,
        penultimate_layer=explainer.layer,
        seek_penultimate_conv_layer=False,
        max_N=explainer.scorecam_max_n,
        batch_size=BATCH_SIZE,
        expand_cam=False,
        normalize_cam=False,
    )


def _call_saliency(explainer: Settings, visualizer, batch: np.ndarray, tumour_wanted: np.ndarray):
    from tf_keras_vis.utils.scores import BinaryScore

    return visualizer(
        BinaryScore(tumour_wanted.tolist()),
        batch,
        smooth_samples=explainer.smoothgrad_samples,
        smooth_noise=SMOOTHGRAD_NOISE,
        normalize_map=False,
    )


@dataclass(frozen=True)
class Method:
    """One explanation method: its name in words, how its visualizer is built (from the model) and
    called (explainer, visualizer, batch, tumour_wanted → raw maps on the conv grid), the reference
    patches per class of its shared scale, and whether the fused Grad-CAM pass can stand in for it."""

    name: str
    title: str
    build: Callable[[Any], Any]
    call: Callable[..., Any]
    reference_per_class: int
    fused: bool = False


# A new method: one entry here, plus its build and call functions.
EXPLANATION_METHODS = {
    method.name: method
    for method in (
        Method("gradcam", "Grad-CAM", _build_gradcam, _call_cam, 16, fused=True),
        Method("gradcam++", "Grad-CAM++", _build_gradcam_plus_plus, _call_cam_plus_plus, 16),
        Method("scorecam", "Score-CAM (slow)", _build_scorecam, _call_scorecam, 4),
        Method("saliency", "SmoothGrad saliency", _build_saliency, _call_saliency, 8),
    )
}
METHODS = tuple(EXPLANATION_METHODS)
METHOD_TITLES = {name: method.title for name, method in EXPLANATION_METHODS.items()}
# The shared scale: this percentile of the map strengths of REFERENCE_PER_CLASS[method] tumour and as many
# normal patches of the bundled sample, per score, is drawn at the top colour. Fewer for the slow methods:
# on the baseline, on 2 busy cores, 32 patches cost ~4 s (Grad-CAM/++), ~30 s (SmoothGrad) and ~100 s
# (Score-CAM) per score.
REFERENCE_PER_CLASS = {name: method.reference_per_class for name, method in EXPLANATION_METHODS.items()}
