"""Training: the jitted steps, the loop, parallelism, optimizers, checkpoints
and the workdir."""
