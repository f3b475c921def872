"""The 2-D map of the feature space: projections (PCA, t-SNE), the scatter's sample, the points selected.

PCA (the default) is fitted on every patch's features: it is linear, deterministic and takes a
fraction of a second at 100,000 x 256. t-SNE (scikit-learn, Barnes-Hut) keeps local neighbourhoods
better but costs seconds per thousand points, so it runs on the scatter's sample only and is refused
above TSNE_MAX_POINTS; its scatter is a smaller sample (TSNE_SAMPLE). UMAP is not installed: on the scatter's sample t-SNE is fast enough, and UMAP
would add numba/llvmlite (~100 MB) for no view the page needs.

A scatter of more than SCATTER_SAMPLE points is a stratified sample: each label keeps its share
(at least one point per label present), drawn with a fixed seed so the map does not jump on a rerun.

scikit-learn's OpenMP/BLAS threads spin-wait for each other; on a CPU shared with other work that
made t-SNE of 1,000 points take 48 s instead of 12 s with one thread, and a neighbour query 15 ms
instead of 0.7 ms, so both run `single_threaded()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import numpy as np
import pandas as pd

from core.errors import ProjectionError

METHODS = ("pca", "tsne")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}
SCATTER_SAMPLE = 3000  # points drawn on the page (PCA); the features keep every patch
TSNE_SAMPLE = 1000  # points drawn with t-SNE (~12 s on a busy 2-core CPU; it grows faster than N)
TSNE_MAX_POINTS = 20_000  # above this, t-SNE takes minutes on a CPU: use PCA or the sample
SEED = 0


@cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspecting the loaded libraries costs ~8 ms: once a process


def single_threaded():
    """A context in which scikit-learn's OpenMP and BLAS pools use one thread."""
    return _threadpools().limit(limits=1)


def stratified_sample(labels: np.ndarray, size: int = SCATTER_SAMPLE, seed: int = SEED) -> np.ndarray:
    """Sorted row indices of at most `size` rows, each label (NaN counts as one) keeping its share."""
    labels = np.asarray(labels, dtype=np.float64)
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keys = np.where(np.isnan(labels), -1.0, labels)
    classes, counts = np.unique(keys, return_counts=True)
    quotas = np.maximum(1, np.floor(counts * size / n).astype(int))
    chosen = [
        rng.choice(np.flatnonzero(keys == value), size=min(quota, count), replace=False)
        for value, quota, count in zip(classes, quotas, counts, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def pca_xy(features: np.ndarray, seed: int = SEED) -> np.ndarray:
    """The first two principal components of `features` (N, D) -> (N, 2) float32."""
    from sklearn.decomposition import PCA

    features = np.asarray(features, dtype=np.float32)
    if len(features) < 2:
        return np.zeros((len(features), 2), dtype=np.float32)
    return PCA(n_components=2, random_state=seed).fit_transform(features).astype(np.float32)


def tsne_xy(features: np.ndarray, seed: int = SEED) -> np.ndarray:
    """A 2-D t-SNE embedding (PCA-initialised, fixed seed) -> (N, 2) float32."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n > TSNE_MAX_POINTS:
        raise ProjectionError(
            f"t-SNE of {n:,} points would take minutes or more; it is limited to {TSNE_MAX_POINTS:,}. "
            "Use PCA (the default) for a whole large dataset."
        )
    if n < 4:
        return pca_xy(features, seed)
    perplexity = min(30.0, (n - 1) / 3.0)
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    with single_threaded():
        return tsne.fit_transform(np.asarray(features, dtype=np.float32)).astype(np.float32)


def project(features: np.ndarray, method: str = "pca", seed: int = SEED) -> np.ndarray:
    """(N, D) features -> (N, 2) coordinates by `method` ('pca' or 'tsne')."""
    if method not in METHODS:
        raise ProjectionError(f"unknown projection {method!r}; choose one of: {', '.join(METHODS)}.")
    return pca_xy(features, seed) if method == "pca" else tsne_xy(features, seed)


def ids_of_points(points: Iterable[dict]) -> list[str]:
    """The patch ids of the points a Plotly selection returned (each point's first customdata
    value is its id), in selection order, without repeats."""
    seen: dict[str, None] = {}
    for point in points:
        data = point.get("customdata")
        if isinstance(data, list | tuple) and data:
            seen.setdefault(str(data[0]), None)
        elif isinstance(data, str):
            seen.setdefault(data, None)
    return list(seen)


# --------------------------------------------------------------------------- the scatter's table

COLOUR_BY = {
    "label": "true label",
    "call": "call at the threshold",
    "outcome": "correct / incorrect at the threshold",
    "prob": "P(tumour)",
    "quality": "input-quality flag",
    "slide": "slide",
    "uncertainty": "uncertainty (8-view spread; from TTA predictions)",  # ui.uncertainty adds it
}


def scatter_points(
    features: np.ndarray, labels: np.ndarray, method: str = "pca"
) -> tuple[np.ndarray, np.ndarray]:
    """(rows drawn, their (n, 2) coordinates): a stratified sample of at most SCATTER_SAMPLE rows
    (TSNE_SAMPLE for t-SNE). PCA is fitted on every row and the sample's rows are taken from it;
    t-SNE runs on the sample only."""
    rows = stratified_sample(labels, SCATTER_SAMPLE if method == "pca" else TSNE_SAMPLE)
    if method == "pca":
        return rows, pca_xy(features)[rows]
    return rows, project(features[rows], method)


def scatter_frame(found, rows: np.ndarray, xy: np.ndarray, threshold: float) -> pd.DataFrame:
    """One row a drawn point: id, x, y and every colour-by column (`slide` only when slide ids exist)."""
    from core.constants import LABEL_NAMES

    labels = found.labels[rows]
    probs = found.probs[rows].astype(np.float64)
    called = (probs >= threshold).astype(int)
    frame = pd.DataFrame(
        {
            "id": [found.ids[i] for i in rows],
            "x": xy[:, 0],
            "y": xy[:, 1],
            "label": [LABEL_NAMES.get(int(v), "?") if v == v else "unlabelled" for v in labels],
            "call": [LABEL_NAMES[c] for c in called],
            "outcome": np.where(called == labels, "correct", "incorrect"),
            "prob": probs,
            "quality": [found.quality[i] for i in rows],
        }
    )
    if found.groups is not None:
        frame["slide"] = [found.groups[i] for i in rows]
    return frame
