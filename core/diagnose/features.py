"""Penultimate-layer features, as the diagnose tools (Feature map, similar patches, label issues) use them.

Their home is core.evaluate.features: the features job of the engine (core.evaluate.jobs) computes and
caches them, and a lower layer never imports a higher one. Re-exported here for the diagnose tools, the
CLI and the pages that import them from this module.
"""

from core.evaluate.features import (  # noqa: F401 (their home is core.evaluate.features)
    FEATURE_CACHE_FORMAT,
    FEATURES_SUBDIR,
    NPZ_KEYS,
    FeatureSet,
    Progress,
    cached_features,
    compute_features,
    default_feature_cache_dir,
    feature_cache_key,
    feature_cache_path,
    patch_features,
    read_features,
    require_labels,
    save_npz_atomic,
)
