#!/bin/bash
# Multi-node GPU training on SLURM: one process per node, all its GPUs.
# jax.distributed.initialize() reads SLURM's variables (--distributed).
# Install once on the cluster: pip install -e . 'jax[cuda12]==0.10.2'
# Usage: CONFIG=configs/supervised.py sbatch experiments/launch/slurm_gpu.sh [--config.X=Y ...]
#SBATCH --job-name=ssl_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
#SBATCH --signal=TERM@120  # SIGTERM two minutes early: ssl_jax saves, then exits.
#SBATCH --requeue
set -euo pipefail
CONFIG=${CONFIG:-configs/supervised.py}
# Must be on a filesystem every node sees; a requeued job resumes from it.
WORKDIR=${WORKDIR:-$HOME/ssl_jax_runs/${SLURM_JOB_NAME}-${SLURM_JOB_ID}}
set +e
srun python -m ssl_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
  --distributed "$@"
status=$?
# Retryable (the state is saved; a rerun resumes): 143, SIGTERM (preempted or
# out of time); 75, another process of the run was lost. 130 is Ctrl-C: the
# user stopped it, so it is not requeued.
case $status in
  143|75) echo "ssl_jax exited $status: requeueing"; scontrol requeue "$SLURM_JOB_ID" ;;
esac
exit $status
