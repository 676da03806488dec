#!/usr/bin/env bash
# All the GPU work of a lent session in one `run` call that ends inside DEADLINE seconds (default 530):
#   1. the dataset collection of the GPU matrix (CPU work, niced) runs beside scripts/gpu_check.sh (kernel tests and
#      benchmarks, which need the GPU to themselves);
#   2. the results matrix (scripts/gpu_matrix.sh, many runs at once on the one GPU) until the deadline;
#   3. everything packed as $OUT/gpu_results.tar.gz, plus $OUT/summary.txt.
# Here: bash scripts/gpu_wheels.sh; then run(command="OUT=$OUT bash scripts/gpu_session.sh", carry=[".whl"],
# timeout_s=600). Unpack with: tar -xzf gpu_results.tar.gz -C gpu_results
set -uo pipefail
FINAL=${OUT:-gpu_out}
DEADLINE=${DEADLINE:-530}
RES=${RES:-gpu_results}
T0=$(date +%s)
rm -rf "$RES" && mkdir -p "$RES" "$FINAL"
source scripts/gpu_env.sh > "$RES/env.txt" 2>&1

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
