#!/bin/bash
# Training on a Cloud TPU VM pod slice: the same command on every worker;
# jax.distributed.initialize() finds the pod's topology (--distributed).
# Usage: TPU=my-v4-32 ZONE=us-central2-b WORKDIR=/mnt/shared/run1 \
#   experiments/launch/tpu_vm_pod.sh [--config.X=Y ...]
set -euo pipefail
: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE}"
: "${WORKDIR:?set WORKDIR to a directory every worker shares (e.g. NFS)}"
CONFIG=${CONFIG:-configs/supervised.py}
REPO=${REPO:-https://github.com/YOUR_ORG/ssl_jax.git}
# Retryable exits (the state is saved; the same command resumes): 143,
# SIGTERM (maintenance, preemption); 75, a worker was lost. Up to $TRIES runs.
TRIES=${TRIES:-5}
for try in $(seq "$TRIES"); do
  set +e
  gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="
    set -e
    [ -d ssl_jax ] || git clone $REPO ssl_jax
    cd ssl_jax && pip install -q -e . 'jax[tpu]==0.10.2'
    python -m ssl_jax.main --config=$CONFIG --workdir=$WORKDIR --distributed $*
  "
  status=$?
  set -e
  case $status in
    143|75) echo "try $try exited $status: resuming" ;;
    *) exit $status ;;
  esac
done
exit $status
