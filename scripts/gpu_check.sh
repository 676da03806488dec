#!/usr/bin/env bash
# Every GPU check and benchmark of the project (about 3-5 minutes; each step has its own time cap).
# Usage (on the GPU machine, repo root): OUT=out_dir bash scripts/gpu_check.sh, with .whl carried (gpu_wheels.sh);
# scripts/gpu_session.sh runs it beside the dataset collection of the GPU matrix.
# Writes under $OUT: tests.log, bench_scan.json/png (issue-2 sweep), bench_target.json (B=8 T=4096 D=1536 bf16),
# bench_t512.json (vs the sequential-loop minGRU), bench_agents.json (training step and acting latency on the GPU).
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
source scripts/gpu_env.sh
$PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'triton', triton.__version__)"
# 1. correctness of the Triton kernel natively on CUDA (the same tests CI runs under TRITON_INTERPRET=1)
timeout 100 $PY - <<'PY' 2>&1 | tee "$OUT/tests.log"
import torch
from minrnn import scan
for backend, dtype, tol in [(k, d, t) for k in ("triton", "triton_chunked")
                             for d, t in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2))]:
    for T in (1, 7, 64, 1000, 4096):
        a = torch.rand(4, T, 96, device="cuda").to(dtype).requires_grad_()
        b = torch.randn(4, T, 96, device="cuda").to(dtype).requires_grad_()
        h0 = torch.randn(4, 96, device="cuda").to(dtype)
        ref = scan(a.double(), b.double(), h0.double(), backend="sequential")
        out = scan(a, b, h0, backend=backend)
        g = torch.randn_like(ref)
        ga, gb = torch.autograd.grad((out.double() * g).sum(), (a, b))
        ra, rb = torch.autograd.grad((ref * g).sum(), (a, b))
        err = max((out.double() - ref).abs().max().item(), (ga.double() - ra).abs().max().item() / (1 + ra.abs().max().item()))
        print(f"{backend} {dtype} T={T}: max err {err:.2e}", "OK" if err <= tol * (10 if T > 1000 else 1) else "FAIL")
PY
# 2. the issue-2 targets: scan at B=8, T=4096, D=1536, bf16 in / fp32 accumulation, GB/s against the device
timeout 60 $PY -m minrnn.bench --device cuda --dtype bf16 --B 8 --D 1536 --T 4096 \
  --cases scan_triton scan_triton_chunked scan_logspace mingru minlstm gru lstm --out "$OUT/target" && cp "$OUT/target/bench.json" "$OUT/bench_target.json"
# 3. >=100x over the sequential-loop minGRU at T=512, and MinGRU vs cuDNN nn.GRU for T >= 512
timeout 60 $PY -m minrnn.bench --device cuda --dtype fp32 --B 64 --D 256 --T 512 \
  --cases mingru mingru_loop gru lstm minlstm --out "$OUT/t512" && cp "$OUT/t512/bench.json" "$OUT/bench_t512.json"
# 4. the full sweep over T (plot)
timeout 100 $PY -m minrnn.bench --device cuda --dtype bf16 --out "$OUT/scan" \
  --cases scan_triton scan_triton_chunked scan_logspace mingru minlstm gru lstm attention mingru_loop step && cp "$OUT/scan/bench.json" "$OUT/bench_scan.json" && cp "$OUT/scan/bench.png" "$OUT/bench_scan.png"
# 5. agent training step (K = 20, 200, 1000) and acting latency, on the GPU
timeout 75 $PY run_rl.py bench agents --device cuda --contexts 20 200 1000 --out "$OUT/bench_agents.json" 2>&1 | tail -45
ls -la "$OUT"
