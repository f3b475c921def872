"""Diagnostics beyond the confusion matrix: the feature map, similar patches, likely label errors and
model comparison (no streamlit; TensorFlow imported lazily)."""
