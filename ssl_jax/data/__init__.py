"""Datasets: readers for the original file formats, TFDS fallback, splits."""
