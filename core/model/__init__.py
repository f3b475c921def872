"""Layer 2, model: architectures, saving/loading with the model contract and its metadata, and the
augmentation layers built into training models. TensorFlow is imported inside functions."""
