"""Layer 3, evaluate: metrics, predictions (streamed prediction, the prediction cache and background
prediction jobs), explanations (Grad-CAM and friends) and the interpretation of a model's predictions."""
