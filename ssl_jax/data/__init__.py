"""Datasets: the registry, readers for the original files, TFDS, splits."""
