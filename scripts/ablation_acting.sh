#!/usr/bin/env bash
# Which training regime and acting mode score best for a recurrent Decision agent (docs/RESULTS.md §3)?
# Decision-minGRU, stacked tokens, 3,000 updates at lr 3e-4 after a 300-step warm-up (the fixed-step CPU budget that
# section was measured with; configs/cpu-budget.yaml is now a time budget), on one dataset; 2 runs at a time.
# Usage: scripts/ablation_acting.sh DATASET_SPEC ENV TARGET OUT [SEEDS...]
set -euo pipefail
spec=$1 env=$2 target=$3 out=$4; shift 4
seeds=${*:-0 1}
cd "$(dirname "$0")/.."
jobs=()
for seed in $seeds; do
  jobs+=("window-window $seed --train-mode window --acting-mode window")
  jobs+=("window-recurrent $seed --train-mode window --acting-mode recurrent")
  jobs+=("episode_start-recurrent $seed --train-mode episode_start --acting-mode recurrent")
  jobs+=("burn_in-recurrent $seed --train-mode burn_in --burn-in 60 --acting-mode recurrent")
  jobs+=("segments-recurrent $seed --train-mode segments --segment-len 1000 --batch-size 4 --acting-mode recurrent")
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '
  set -- {}; name=$1 seed=$2; shift 2
  dir='"$out"'/$name/seed$seed
  [ -f $dir/results.json ] && exit 0
  resume=""; [ -f $dir/checkpoints/latest ] && resume=--resume
  mkdir -p '"$out"'/$name
  OMP_WAIT_POLICY=PASSIVE python run_rl.py train --steps 3000 --warmup-steps 300 --lr 0.0003 --layout stacked --eval-every 1000 \
    --threads 1 --set progress=false --set checkpoint_every=1000 --set histogram_every=1000 --dataset '"$spec"' \
    --env '"$env"' --target-returns '"$target"' --backbone mingru --seed $seed --out $dir $resume "$@" \
    > '"$out"'/$name/seed$seed.log 2>&1 && echo "$name seed$seed: $(tail -2 '"$out"'/$name/seed$seed.log | head -1)"'
