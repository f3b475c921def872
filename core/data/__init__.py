"""Layer 1, data: decoding patches, the dataset layouts and the Dataset type, parallel scans, the HDF5
cache, dataset statistics and the input-quality gate. Depends only on core's top-level modules."""
