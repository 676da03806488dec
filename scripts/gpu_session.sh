#!/usr/bin/env bash
# All the GPU work of a lent session in one `run` call that ends inside DEADLINE seconds (default 530):
#   1. the dataset collection of the GPU matrix (CPU work, niced) runs beside scripts/gpu_check.sh (kernel tests and
#      benchmarks, which need the GPU to themselves);
#   2. the results matrix (scripts/gpu_matrix.sh, many runs at once on the one GPU) until the deadline;
#   3. everything packed as $OUT/gpu_results.tar.gz, plus $OUT/summary.txt.
# Here: bash scripts/gpu_wheels.sh; then run(command="OUT=$OUT bash scripts/gpu_session.sh", carry=[".whl"],
# timeout_s=600). Unpack with: tar -xzf gpu_results.tar.gz -C gpu_results
#
# MODE=bench instead runs only scripts/bench_gpu.py (about 7 minutes: scan back-ends incl. fla's HGRN kernels, MinGRU
# vs attention, eager vs CUDA-graphed updates and acting with their equality checks, 8-seed ensemble vs 8
# processes) and returns its docs/gpu/bench_*.json under $OUT; copy them into docs/gpu/ here. For the fla back-ends,
# carry fla-core's wheels: python3 -m pip download -q --no-deps -d .whl fla-core==0.6.0 einops==0.8.2
#   run(command="MODE=bench OUT=$OUT bash scripts/gpu_session.sh", carry=[".whl"], timeout_s=600)
set -uo pipefail
FINAL=${OUT:-gpu_out}
DEADLINE=${DEADLINE:-530}
RES=${RES:-gpu_results}
T0=$(date +%s)
rm -rf "$RES" && mkdir -p "$RES" "$FINAL"
source scripts/gpu_env.sh > "$RES/env.txt" 2>&1

if [ "${MODE:-all}" = bench ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RES/gpu.txt" 2>&1
  # bench_gpu.py caps each section itself (400 s in all); this outer cap only guards against a stuck start-up.
  # BENCH_OUT / BENCH_ARGS: a dry run elsewhere, e.g. BENCH_OUT=/tmp/b BENCH_ARGS=--smoke on a CPU machine.
  # On the GPU the files go into docs/gpu so that the later sections' scan "auto" reads the scan section's result.
  BENCH_OUT=${BENCH_OUT:-docs/gpu}
  timeout 540 "$PY" scripts/bench_gpu.py --out "$BENCH_OUT" ${BENCH_ARGS:-} 2>&1 | tee "$RES/bench_gpu.log"
  cp "$BENCH_OUT"/bench_scan_backends.json "$BENCH_OUT"/bench_layer_vs_attention.json \
    "$BENCH_OUT"/bench_update_graphs.json "$BENCH_OUT"/bench_ensemble.json "$BENCH_OUT"/bench_gpu_summary.json \
    "$FINAL/" 2>/dev/null
  cp "$RES/env.txt" "$RES/gpu.txt" "$RES/bench_gpu.log" "$FINAL/"
  echo "bench done at $(( $(date +%s) - T0 )) s"
  ls -la "$FINAL"
  exit 0
fi

STAGE=data OUT=$RES/matrix nice -n 10 bash scripts/gpu_matrix.sh > "$RES/matrix_data.log" 2>&1 &
data_pid=$!
OUT=$RES/check bash scripts/gpu_check.sh > "$RES/check.log" 2>&1
echo "checks done at $(( $(date +%s) - T0 )) s"
wait "$data_pid"
echo "datasets done at $(( $(date +%s) - T0 )) s"

budget=$(( DEADLINE - ($(date +%s) - T0) - 25 ))  # 25 s kept for the table and the archive
if [ "$budget" -gt 60 ]; then
  STAGE=train MATRIX_SECONDS=$budget OUT=$RES/matrix bash scripts/gpu_matrix.sh > "$RES/matrix_train.log" 2>&1
  echo "matrix done at $(( $(date +%s) - T0 )) s"
else
  echo "no time left for the matrix (${budget} s): datasets and checks only" | tee -a "$RES/matrix/timing.txt"
fi

{
  cat "$RES/env.txt" "$RES/check/gpu.txt" "$RES/check/tests.log" "$RES/matrix/timing.txt" 2>/dev/null
  head -60 "$RES/matrix/table.log" 2>/dev/null
} > "$FINAL/summary.txt"
tar -czf "$FINAL/gpu_results.tar.gz" -C "$RES" .
cat "$FINAL/summary.txt"
tail -50 "$RES/check.log"
ls -la "$FINAL"
