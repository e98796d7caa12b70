"""Evaluation beyond the loss: k-NN monitor, per-class reports, frozen-feature
linear evaluation."""
