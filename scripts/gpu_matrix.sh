#!/usr/bin/env bash
# The results matrix of docs/RESULTS.md on one GPU machine in one call: build the datasets from the shipped policies,
# then train many small runs at once on the one GPU (each a process; the GPU is shared, the CPU cores run the
# environments and the samplers). Only the small results come back under $OUT (no checkpoints).
#
#   OUT=$OUT bash scripts/gpu_matrix.sh        # on the GPU machine: run(command=..., carry=[".whl"]), see gpu_wheels.sh
#   OUT=smoke DEVICE=cpu STEPS=20 LEVELS="medium" SIZE=2000 SEEDS="0" JOBS=2 bash scripts/gpu_matrix.sh  # a smoke test
#
# Knobs (environment): DEVICE (cuda), STEPS (3000), SEEDS ("0 1 2"), LEVELS ("medium medium-replay medium-expert
# expert"), ENVS ("halfcheetah hopper walker2d"), SIZE (200000 transitions per rollout dataset), JOBS (runs at once;
# default: CPU cores - 2), WORK (where datasets and run directories go, default gpu_work).
set -euo pipefail
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-0 1 2}
LEVELS=${LEVELS:-medium medium-replay medium-expert expert}
ENVS=${ENVS:-halfcheetah hopper walker2d}
SIZE=${SIZE:-200000}
WORK=${WORK:-gpu_work}
JOBS=${JOBS:-$(($(nproc) > 3 ? $(nproc) - 2 : 1))}
mkdir -p "$OUT" "$WORK"
source scripts/gpu_env.sh
export MINARI_DATASETS_PATH=$PWD/$WORK/datasets
t0=$(date +%s)

# 1. datasets, one process each (collecting is CPU work: an actor in NumPy and MuJoCo)
pids=()
for env in $ENVS; do
  for level in $LEVELS; do
    size=$SIZE
    [ "$level" = medium-replay ] && size=""            # the recipe's own size: the buffer up to the medium checkpoint
    [ "$level" = medium-expert ] && size=$((SIZE / 2))  # per part, so the dataset has SIZE transitions
    "$PY" run_rl.py collect --env "$env" --level "$level" ${size:+--size $size} > "$OUT/collect_${env}_${level}.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
echo "datasets built in $(( $(date +%s) - t0 )) s" | tee "$OUT/timing.txt"
"$PY" run_rl.py datasets > "$OUT/datasets.txt" 2>&1 || true

# 2. the matrix: the same budget as docs/RESULTS.md's CPU table, on $DEVICE
configs=()
for env in $ENVS; do for level in $LEVELS; do configs+=("$env-$level"); done; done
set +e
"$PY" scripts/sweep.py run --configs "${configs[@]}" --backbones transformer mingru minlstm --seeds $SEEDS \
  --steps "$STEPS" --out "$WORK/sweep" --jobs "$JOBS" --threads 1 --set device="$DEVICE" \
  --set warmup_steps=300 --set lr=0.0003 --set layout=stacked --set eval_every=1000 --set eval_episodes=10 \
  --set checkpoint_every=1000 --set histogram_every=1000 --recurrent-set acting_mode=recurrent 2>&1 | tee "$OUT/sweep.log"
rc=${PIPESTATUS[0]}
set -e
echo "matrix done in $(( $(date +%s) - t0 )) s, exit $rc" | tee -a "$OUT/timing.txt"

# 3. bring back the table, the curves and each run's small files
mkdir -p "$OUT/sweep" "$WORK/sweep"
cp "$WORK"/sweep/table.* "$WORK"/sweep/scores.png "$WORK"/sweep/curves.png "$WORK"/sweep/curves_*.png "$OUT/sweep/" 2>/dev/null || true
(cd "$WORK/sweep" && find . -name results.json -o -name evals.jsonl -o -name dataset.json -o -name config.yaml \
  | tar -cf - -T - ) | tar -xf - -C "$OUT/sweep"
exit "$rc"
