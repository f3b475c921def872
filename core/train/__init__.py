"""Layer 3, train: the training config, input pipeline, the training job and its reporting, runs on disk
(status, metrics, locks), precise BatchNorm, the chance check and tf.distribute strategies."""
