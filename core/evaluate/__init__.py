"""Layer 3, evaluate: metrics, predictions (streamed prediction, the prediction cache and background
prediction jobs), penultimate-layer features (their streamed pass and cache), explanations (Grad-CAM and
friends) and the interpretation of a model's predictions."""
