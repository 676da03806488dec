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
# default: CPU cores - 1), WORK (where datasets and run directories go, default gpu_work), STAGE (data: build the
# datasets; train: run the matrix and pack it; all: both), MATRIX_SECONDS (stop the matrix after this long, then table
# what finished: the sweep is seed-major, so a cut-short matrix holds every dataset x backbone for the first seeds).
# Evaluation uses one process per run (eval_vector=sync): JOBS runs x 10 async env processes would swamp the cores.
set -euo pipefail
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-0 1 2}
LEVELS=${LEVELS:-medium medium-replay medium-expert expert}
ENVS=${ENVS:-halfcheetah hopper walker2d}
SIZE=${SIZE:-200000}
WORK=${WORK:-gpu_work}
JOBS=${JOBS:-$(($(nproc) > 2 ? $(nproc) - 1 : 1))}
STAGE=${STAGE:-all}
MATRIX_SECONDS=${MATRIX_SECONDS:-0}
mkdir -p "$OUT" "$WORK"
source scripts/gpu_env.sh
case $WORK in /*) ;; *) WORK=$PWD/$WORK ;; esac
export MINARI_DATASETS_PATH=$WORK/datasets
t0=$(date +%s)
configs=()
for env in $ENVS; do for level in $LEVELS; do configs+=("$env-$level"); done; done

if [ "$STAGE" != train ]; then

# 1. datasets, one process each (collecting is CPU work: an actor in NumPy and MuJoCo)
pids=()
for env in $ENVS; do
  for level in $LEVELS; do
    size=$SIZE
    [ "$level" = medium-replay ] && size=""            # the recipe's own size: the buffer up to the medium checkpoint
    # medium-expert: SIZE per part (2 x SIZE in all), as the CPU table's data
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" run_rl.py collect --env "$env" --level "$level" ${size:+--size $size} > "$OUT/collect_${env}_${level}.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
echo "datasets built in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timing.txt"
"$PY" run_rl.py datasets > "$OUT/datasets.txt" 2>&1 || true
fi
[ "$STAGE" = data ] && exit 0

# 2. the matrix: the same budget as docs/RESULTS.md's CPU table, on $DEVICE
t1=$(date +%s)
cap=()
[ "$MATRIX_SECONDS" -gt 0 ] && cap=(timeout -k 10 "$MATRIX_SECONDS")
set +e
cat > "$WORK/gpu-matrix.yaml" <<YAML
name: gpu-matrix
out: $WORK/sweep
datasets: [$(IFS=,; echo "${configs[*]}")]
seeds: [$(echo $SEEDS | tr ' ' ',')]
steps: $STEPS
jobs: $JOBS
threads: 1
set: {device: $DEVICE, eval_vector: sync, warmup_steps: 300, lr: 0.0003, layout: stacked, eval_every: 1000,
      eval_episodes: 10, checkpoint_every: 1000, histogram_every: 1000}
agents:
  transformer: {backbone: transformer}
  mingru: {backbone: mingru, set: {acting_mode: recurrent}}
  minlstm: {backbone: minlstm, set: {acting_mode: recurrent}}
YAML
${cap[@]+"${cap[@]}"} "$PY" -m sweep run "$WORK/gpu-matrix.yaml" > "$OUT/sweep.log" 2>&1
rc=$?
set -e
echo "matrix stage: $(( $(date +%s) - t1 )) s, exit $rc ($( find "$WORK/sweep" -name results.json | wc -l ) runs finished)" \
  | tee -a "$OUT/timing.txt"
"$PY" -m sweep collect "$WORK/sweep" --name gpu-matrix --out "$WORK/sweep/gpu-matrix.csv" > "$OUT/table.log" 2>&1 &&
  "$PY" -m sweep report "$WORK/sweep/gpu-matrix.csv" --baseline transformer --out "$WORK/sweep/report" \
  >> "$OUT/table.log" 2>&1 || true

# 3. bring back the tidy table, the report and each run's small files, as one archive (the device tool returns few files)
(cd "$WORK/sweep" && find . -maxdepth 1 -name 'gpu-matrix.*' > /tmp/pack.txt
 find report -type f >> /tmp/pack.txt 2>/dev/null || true
 find . -name results.json -o -name evals.jsonl -o -name dataset.json -o -name config.yaml -o -name 'seed*.log' \
   >> /tmp/pack.txt
 tar -czf - -T /tmp/pack.txt) > "$OUT/sweep.tar.gz"
exit "$rc"
