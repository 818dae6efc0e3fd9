#!/usr/bin/env bash
# Train with several processes on one or more nodes (torch.distributed.run).
#
#   tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py args ...]
#
# NUM_PROCS is the number of processes per node (GPUs; on a machine without
# CUDA, CPU processes talking over gloo). Environment (defaults):
#   NNODES=1  NODE_RANK=0  MASTER_ADDR=127.0.0.1  PORT=29533
# On several nodes, run the same command on each with its NODE_RANK and the
# same MASTER_ADDR / PORT.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py args ...]" >&2
    exit 2
fi
CONFIG=$1
NUM_PROCS=$2
shift 2

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-29533}   # not 29500 (torch's default) to avoid the common clash
PYTHON=${PYTHON:-python}
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"

export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NUM_PROCS" \
    --master_port="$PORT" \
    "$REPO_ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
