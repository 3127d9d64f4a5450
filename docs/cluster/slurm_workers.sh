#!/usr/bin/env bash
# vaebench on a Slurm cluster: a job array of `vaebench worker` processes, one per GPU, all on one
# study held in PostgreSQL. Each array task gets one GPU (Slurm sets CUDA_VISIBLE_DEVICES to it, so
# the worker's `cuda` is that GPU), makes sure the study exists — `vaebench run SPEC --workers 0`
# creates it and enqueues its grid, or checks that the existing one was made from the same spec;
# it runs under the study's PostgreSQL advisory lock, so every task may do it at once — then claims
# trials until none is left and exits 0. A task that dies loses nothing: its trial is found stale
# (no heartbeat for 3 x --heartbeat seconds) and run again by another worker, from the run's last
# checkpoint (train.checkpoint_every, default every 10 minutes of training, in $RESULTS).
#
# Preemption and the time limit: Slurm sends SIGTERM first (a preempted job after the partition's
# GraceTime; --signal=B:TERM@120 below asks for it 120 s before --time runs out). The worker is the
# batch shell itself (`exec`), so it gets the signal: it writes a checkpoint at the next training
# step, hands its trial back to the study at once (another task takes it, no stale timeout) and
# exits 3. --requeue puts a preempted task back in the queue; when it starts again it joins the study
# like any other task. Checkpoints are found across nodes only because $RESULTS is shared.
#
# Before submitting: the code installed in a virtualenv on the shared filesystem (pip install -e .),
# the dataset under $VAEBENCH_DATA_ROOT (workers do not download: --no-download), a PostgreSQL
# database every node can reach. Then:
#
#   sbatch --export=ALL,VAEBENCH_STORAGE=postgresql://USER:PASSWORD@DB-HOST:5432/DBNAME docs/cluster/slurm_workers.sh
#
# Afterwards, anywhere: vaebench status --study "$STUDY" --storage "$VAEBENCH_STORAGE", and (rows,
# weights and figure arrays are already in the shared $RESULTS folder) vaebench report --study "$STUDY" --results "$RESULTS".
# One node with several GPUs can instead run `vaebench run "$SPEC" --storage ... --device cuda` in one
# job (--gres=gpu:N): it starts one worker per GPU it was given (--workers-per-gpu K to pack K per GPU).
#
#SBATCH --job-name=vaebench
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --output=vaebench-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --signal=B:TERM@120
#SBATCH --requeue

set -euo pipefail

: "${VAEBENCH_STORAGE:?set VAEBENCH_STORAGE=postgresql://USER:PASSWORD@DB-HOST:5432/DBNAME}"
REPO=${REPO:-$HOME/vaebench}                # the checkout (sweeps/, plugins beside the spec)
SPEC=${SPEC:-sweeps/cifar10_beta.yaml}
STUDY=${STUDY:-cifar10_beta}                # the spec's `study:`
RESULTS=${RESULTS:-/shared/vaebench/results}
export VAEBENCH_DATA_ROOT=${VAEBENCH_DATA_ROOT:-/shared/data}

cd "$REPO"
source "${VENV:-$REPO/.venv}/bin/activate"
echo "task ${SLURM_ARRAY_TASK_ID:-0} on $(hostname), CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"

vaebench run "$SPEC" --storage "$VAEBENCH_STORAGE" --results "$RESULTS" --workers 0 --no-download -q
# exec: the worker replaces this shell and receives Slurm's SIGTERM (exit 3: checkpointed and handed back)
exec vaebench worker --study "$STUDY" --storage "$VAEBENCH_STORAGE" --results "$RESULTS" \
    --device cuda --threads "${SLURM_CPUS_PER_TASK:-4}" --no-download -q
