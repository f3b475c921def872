"""Similar patches: the k nearest neighbours of a patch in the model's feature space.

"What the model thinks this resembles": neighbours are ranked by Euclidean distance between
penultimate-layer features (core.diagnose.features), the space the final Dense layer separates.
A patch of the dataset is queried by its id (it comes back first, at distance 0); any other patch
(an upload) by its feature vector.

Exact search with scikit-learn's NearestNeighbors (a tree or brute force, chosen by sklearn) is
instant at 10^5 patches. At 10^6 and beyond, an approximate index would replace it: FAISS
(IndexHNSWFlat, or IndexIVFPQ to hold 10^6 x 256 floats in ~64 MB instead of 1 GB), with the
features memory-mapped from the cache rather than loaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.diagnose.features import FeatureSet
from core.diagnose.projection import single_threaded
from core.errors import InputError

DEFAULT_K = 8
COLUMNS = ("rank", "id", "distance", "label", "prob")


class NeighbourIndex:
    """A nearest-neighbour index over a FeatureSet."""

    def __init__(self, found: FeatureSet) -> None:
        from sklearn.neighbors import NearestNeighbors

        self.found = found
        self._index = NearestNeighbors(metric="euclidean").fit(found.features)

    def by_id(self, item: str, k: int = DEFAULT_K) -> pd.DataFrame:
        """The patch `item` itself (rank 0, distance 0) and its k nearest other patches."""
        row = self.found.position(item)
        distances, indices = self._query(self.found.features[row], k + 1)
        others = indices != row
        order = np.concatenate([[row], indices[others][:k]])
        spaced = np.concatenate([[0.0], distances[others][:k]])
        return self._frame(order, spaced)

    def by_vector(self, vector: np.ndarray, k: int = DEFAULT_K) -> pd.DataFrame:
        """The k patches nearest to a feature vector (D,), e.g. of an uploaded patch (ranks from 1)."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        width = self.found.features.shape[1]
        if vector.shape != (width,):
            raise InputError(f"a feature vector of this model has {width} values; got {vector.shape[0]}.")
        distances, indices = self._query(vector, k)
        frame = self._frame(indices, distances)
        frame["rank"] += 1
        return frame

    def _query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(int(k), len(self.found)))
        with single_threaded():
            distances, indices = self._index.kneighbors(vector[None], n_neighbors=k)
        return distances[0], indices[0]

    def _frame(self, indices: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
        found = self.found
        return pd.DataFrame(
            {
                "rank": np.arange(len(indices)),
                "id": [found.ids[i] for i in indices],
                "distance": np.asarray(distances, dtype=np.float64),
                "label": found.labels[indices],
                "prob": found.probs[indices].astype(np.float64),
            },
            columns=list(COLUMNS),
        )
