"""Stain normalisation (Macenko, Reinhard): one reference fitted from training data, stored in the
model's metadata and applied to every patch that model scores.

All the arithmetic is torchstain's numpy backend (torchstain 1.4.1, MIT): the reference is fitted
with `NumpyMacenkoNormalizer.fit` / `NumpyReinhardNormalizer.fit` and every patch goes through their
`normalize`, one patch at a time, as the library works. A vectorised batch version was written and
checked (it matched torchstain to the pixel) but gained nothing in CPU time (torchstain per patch:
~270 patches per CPU second for Macenko, ~450 for Reinhard; the batch version 250 and 180), so only
what torchstain does not do is written here: the pass-through of background, the choice of the
reference, and the JSON form of the fit (BENCHMARKS.md, "Stain normalisation").

- Macenko (Macenko et al., ISBI 2009): each patch's own two stain vectors (the extreme angles of its
  optical densities in their main plane) and concentrations; the concentrations are rescaled to the
  reference's 99th percentiles and re-mixed with the reference's stain matrix.
- Reinhard (Reinhard et al. 2001): each LAB channel standardised, then given the reference's mean
  and standard deviation.

Background passes unchanged: a patch with less than MIN_TISSUE_FRACTION of tissue pixels (optical
density >= BETA in every channel, Macenko's own mask) is returned as it came, as is one flat colour
and any patch torchstain cannot normalise (an error, or a division by zero), so nothing crashes on glass.

The reference: `fit(patches)` on a stack picks the *typical* tissue-rich patch: among patches with at
least REFERENCE_MIN_TISSUE tissue pixels, the one whose stain statistics (Macenko: stain matrix and
99th-percentile concentrations; Reinhard: LAB means and standard deviations), each scaled by its
spread over the candidates, lie closest to their medians. `fit(patch)` on one image uses it as given.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError

METHODS = ("none", "macenko", "reinhard")
META_KEY = "stain_normalisation"  # where a model's patchlens.json keeps its fitted normaliser
LIBRARY = "torchstain 1.4.1 (numpy backend)"
IO = 240.0  # transmitted light intensity (torchstain's default)
BETA = 0.15  # optical density below which a pixel counts as transparent (torchstain's default)
ALPHA = 1.0  # percentile of the extreme stain angles (torchstain's default)
MIN_TISSUE_FRACTION = 0.10  # below this share of tissue pixels a patch passes unchanged
# Optical density -log((I + 1) / IO) of each 8-bit level: a pixel is tissue when it is >= BETA in every
# channel, i.e. when every channel is at most _TISSUE_MAX_LEVEL.
_OD_OF_LEVEL = -np.log((np.arange(256, dtype=np.float64) + 1.0) / IO)
_TISSUE_MAX_LEVEL = int(np.flatnonzero(_OD_OF_LEVEL >= BETA).max())  # brightest level with OD >= BETA
# ONE_BLAS_THREAD: torchstain's per-patch least squares (3x2 by 3x9216) is too small for threads; with
# OpenBLAS's 2 threads it cost 4x the CPU (Macenko 56 vs 247 patches/s of CPU time), so the calls
# into torchstain run with one BLAS thread (threadpoolctl).
FLAT_MAX_STD = 2.0  # a patch whose every channel varies less than this (levels) is one flat colour
REFERENCE_MIN_TISSUE = 0.50  # a reference candidate is at least half tissue
REFERENCE_SAMPLE = 512  # training patches the trainer offers as reference candidates


@dataclass
class StainNormaliser:
    """A fitted (or identity, method "none") stain normaliser; JSON-serialisable with to_meta()."""

    method: str = "none"
    params: dict = field(default_factory=dict)  # the fitted reference (see to_meta)
    reference: dict = field(default_factory=dict)  # where the reference came from (index, id, tissue)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"Unknown stain normalisation {self.method!r}: {', '.join(METHODS)}.")

    @property
    def active(self) -> bool:
        return self.method != "none"

    def fit(self, patches: np.ndarray, ids: list[str] | None = None) -> StainNormaliser:
        """Fit the reference: one patch (h, w, 3) as given, or the typical patch of a stack (n, h, w, 3)."""
        if not self.active:
            return self
        patches = _as_uint8(patches)
        if patches.ndim == 3:
            index, reference = None, patches
        else:
            index = pick_reference(patches, self.method)
            reference = patches[index]
        self.params = _fit_reference(self.method, reference)
        self.reference = {"tissue_fraction": round(float(tissue_fraction(reference[None])[0]), 3)}
        if index is not None:
            self.reference.update(index=int(index), candidates=len(patches))
            if ids is not None:
                self.reference["id"] = str(ids[index])
        return self

    def transform(self, patches: np.ndarray) -> np.ndarray:
        """Normalised uint8 patches (n, h, w, 3) or one (h, w, 3), values 0-255 of any numeric dtype.

        Method "none" returns the input untouched. Background and degenerate patches pass unchanged.
        """
        if not self.active:
            return patches
        if not self.params:
            raise InputError("The stain normaliser has no reference yet: fit it first.")
        patches = _as_uint8(patches)
        single = patches.ndim == 3
        batch = patches[None] if single else patches
        out = self._transform_batch(batch)
        return out[0] if single else out

    def _transform_batch(self, batch: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        library = _library(self.method, self.params)
        out = batch.copy()
        with threadpool_limits(1, user_api="blas"):  # see ONE_BLAS_THREAD
            for i in np.flatnonzero(_normalisable(batch)):
                normalised = _normalise_one(library, self.method, batch[i])
                if normalised is not None:
                    out[i] = normalised
        return out

    def to_meta(self) -> dict:
        """JSON-ready: method, library, the fitted reference and where it came from."""
        if not self.active:
            return {"method": "none"}
        return {"method": self.method, "library": LIBRARY, **self.params, "reference": self.reference}

    @classmethod
    def from_meta(cls, meta: dict | None) -> StainNormaliser:
        meta = dict(meta or {})
        method = meta.pop("method", "none")
        reference = meta.pop("reference", {})
        meta.pop("library", None)
        return cls(method=method, params=meta, reference=reference)


def normaliser_of(model) -> StainNormaliser:
    """The normaliser a loaded model was trained with (its `patchlens_meta`), identity if none; built
    once per model object."""
    cached = getattr(model, "_patchlens_stain_normaliser", None)
    if cached is None:
        meta = (getattr(model, "patchlens_meta", None) or {}).get(META_KEY)
        cached = StainNormaliser.from_meta(meta)
        object.__setattr__(model, "_patchlens_stain_normaliser", cached)  # bypass Keras tracking
    return cached


def tissue_fraction(patches: np.ndarray) -> np.ndarray:
    """Share of pixels of each patch (n, h, w, 3) with optical density >= BETA in every channel."""
    pixels = _as_uint8(patches).reshape(len(patches), -1, 3)
    return np.all(pixels <= _TISSUE_MAX_LEVEL, axis=2).mean(axis=1)


def _normalisable(patches: np.ndarray) -> np.ndarray:
    """Patches with enough tissue and not one flat colour (where torchstain's stain estimate is
    degenerate and would paint the patch in the reference's colours)."""
    flat = patches.reshape(len(patches), -1, 3).std(axis=1, dtype=np.float32).max(axis=1) < FLAT_MAX_STD
    return (tissue_fraction(patches) >= MIN_TISSUE_FRACTION) & ~flat


def pick_reference(patches: np.ndarray, method: str) -> int:
    """Index of the typical tissue-rich patch of a stack (see the module docstring)."""
    tissue = tissue_fraction(patches)
    candidates = np.flatnonzero(tissue >= REFERENCE_MIN_TISSUE)
    if len(candidates) == 0:
        candidates = np.flatnonzero(tissue >= MIN_TISSUE_FRACTION)
    if len(candidates) == 0:
        raise InputError("No patch has enough tissue to serve as the stain reference.")
    stats, ok = _stain_statistics(patches[candidates], method)
    if not ok.any():
        raise InputError("No patch gave a usable stain estimate for the stain reference.")
    candidates, stats = candidates[ok], stats[ok]
    median = np.median(stats, axis=0)
    spread = stats.std(axis=0)
    distance = (((stats - median) / np.where(spread > 0, spread, 1.0)) ** 2).sum(axis=1)
    return int(candidates[np.argmin(distance)])


# --------------------------------------------------------------------------- torchstain


def _library(method: str, params: dict | None = None):
    """torchstain's numpy normaliser for `method`, holding `params` as its reference when given."""
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer

    if method == "macenko":
        library = NumpyMacenkoNormalizer()
        if params:
            library.HERef = np.asarray(params["stain_matrix"], dtype=np.float64)
            library.maxCRef = np.asarray(params["max_concentrations"], dtype=np.float64)
        return library
    library = NumpyReinhardNormalizer()
    if params:
        # float32, as torchstain's own fit leaves them (float64 moved a few pixels by one level)
        library.target_means = np.asarray(params["lab_means"], dtype=np.float32)
        library.target_stds = np.asarray(params["lab_stds"], dtype=np.float32)
    return library


def _fit_one(method: str, patch: np.ndarray) -> dict | None:
    """torchstain's fit of one image as plain lists; None when the image has too little stain."""
    library = _library(method)
    try:
        with _strict_numpy():
            if method == "macenko":
                library.fit(patch, Io=IO, alpha=ALPHA, beta=BETA)
                params = {"stain_matrix": library.HERef, "max_concentrations": library.maxCRef}
            else:
                library.fit(patch)
                params = {"lab_means": library.target_means, "lab_stds": library.target_stds}
    except _LIBRARY_ERRORS:
        return None
    values = np.concatenate([np.ravel(v) for v in params.values()])
    if not np.all(np.isfinite(values)) or (method == "reinhard" and np.any(params["lab_stds"] <= 0)):
        return None
    return {name: np.asarray(value, dtype=np.float64).tolist() for name, value in params.items()}


def _fit_reference(method: str, reference: np.ndarray) -> dict:
    params = _fit_one(method, reference)
    if params is None:
        raise InputError("The stain reference has too little tissue (or stain) to fit.")
    return params


def _normalise_one(library, method: str, patch: np.ndarray) -> np.ndarray | None:
    """torchstain's normalisation of one patch; None when it fails (too little tissue, one colour)."""
    try:
        with _strict_numpy():
            if method == "macenko":
                out = library.normalize(patch, Io=IO, alpha=ALPHA, beta=BETA, stains=False)[0]
            else:
                out = library.normalize(patch)
    except _LIBRARY_ERRORS:
        return None
    return out


_LIBRARY_ERRORS = (np.linalg.LinAlgError, FloatingPointError, ValueError, IndexError)


@contextmanager
def _strict_numpy():
    """Division by zero or an invalid value (an empty tissue mask, a flat channel) raises, so a
    patch torchstain cannot handle is caught instead of turning into NaN pixels."""
    with np.errstate(divide="raise", invalid="raise", over="ignore", under="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield


def _stain_statistics(patches: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, its own fit flattened (Macenko 8 numbers, Reinhard 6), and which patches fitted."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):  # see ONE_BLAS_THREAD
        fits = [_fit_one(method, patch) for patch in patches]
    ok = np.array([fit is not None for fit in fits], dtype=bool)
    width = 8 if method == "macenko" else 6
    stats = np.array(
        [np.concatenate([np.ravel(v) for v in fit.values()]) if fit else np.zeros(width) for fit in fits]
    )
    return stats.reshape(len(patches), width), ok


def _as_uint8(patches) -> np.ndarray:
    patches = np.asarray(patches)
    if patches.ndim not in (3, 4) or patches.shape[-1] != 3:
        raise InputError(f"Stain normalisation takes RGB patches (n, h, w, 3); got shape {patches.shape}.")
    if patches.dtype == np.uint8:
        return patches
    if not np.issubdtype(patches.dtype, np.number):
        raise InputError(f"Patches must hold numbers 0-255; got dtype {patches.dtype}.")
    return np.clip(np.rint(patches), 0, 255).astype(np.uint8)
