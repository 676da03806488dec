"""Speed benchmark: scan back-ends, min-RNN layers and baselines, forward + backward.

    OMP_WAIT_POLICY=PASSIVE python -m minrnn.bench --out bench_out/cpu   # CPU, fp32, B=16, D=128
    python -m minrnn.bench --device cuda --dtype bf16 --out bench_out/gpu

For every case and T it reports forward+backward wall time (best of up to ``--reps`` runs; the median too),
throughput in elements/s (B*T*D per second), peak memory, and on CUDA the achieved GB/s of the scans against the
device's bandwidth. It writes ``bench.json`` and ``bench.png`` (time vs T, log-log) into ``--out`` and prints a
table. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA; on CPU it is the peak resident-set growth during
one run, sampled every millisecond from /proc/self/statm after ``malloc_trim`` (an approximation).

Cases (``--cases``): scan_cpu, scan_triton, scan_triton_chunked, scan_fla, scan_fla_fused (fla's HGRN kernels),
scan_logspace (float64 inside, as the back-end runs),
scan_logspace_fp32 (eager cumsum + logcumsumexp in fp32, as lucidrains' minGRU), scan_sequential (a loop over T),
mingru, minlstm (layers), gru, lstm (torch.nn), attention (causal SDPA, one layer), mingru_loop (minGRU stepped in a
Python loop over T: the paper's sequential baseline). ``step`` measures ``Stack.step`` per token against rerunning
a window of ``--window`` steps (3 blocks, no grad, B=``--step-batch``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from minrnn.baselines import AttentionMixer
from minrnn.blocks import build_backbone
from minrnn.layers import MinGRU, MinLSTM
from minrnn.scan import scan, scan_logspace

__all__ = ["main"]

ALL_CASES = (
    "scan_cpu", "scan_triton", "scan_triton_chunked", "scan_fla", "scan_fla_fused", "scan_logspace",
    "scan_logspace_fp32", "scan_sequential", "mingru", "minlstm", "gru", "lstm", "attention", "mingru_loop", "step",
)  # fmt: skip
SCAN_CASES = tuple(c for c in ALL_CASES if c.startswith("scan_"))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
# CPU: cases whose cost explodes with T are skipped beyond these lengths (a note says so).
CPU_MAX_T = {"scan_sequential": 1024, "mingru_loop": 4096, "attention": 4096, "scan_logspace": 4096}
GPU_PEAK_GBS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0, "L4": 300.0, "T4": 320.0, "A10": 600.0}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m minrnn.bench", description=__doc__.split("\n")[0])
    p.add_argument("--T", type=int, nargs="+", default=[64, 256, 1024, 4096, 16384], help="sequence lengths")
    p.add_argument("--B", type=int, default=16, help="batch size")
    p.add_argument("--D", type=int, default=128, help="width (scan channels, layer in = hidden)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="input dtype (layers: autocast)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cases", nargs="+", choices=ALL_CASES, default=list(ALL_CASES))
    p.add_argument("--reps", type=int, default=5, help="max timed runs per point (fewer when a run is slow)")
    p.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: all cores)")
    p.add_argument("--window", type=int, default=20, help="window K for the step-vs-window case")
    p.add_argument("--step-batch", type=int, default=10, help="batch for the step-vs-window case")
    p.add_argument("--step-iters", type=int, default=30, help="timed iterations for the step-vs-window case")
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="output folder for bench.json, bench.png")
    return p.parse_args(argv)


class _Peak:
    """Peak memory during a block: CUDA allocator stats, or sampled RSS growth on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak_mb = device, float("nan")

    def __enter__(self) -> _Peak:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.base, self.max_rss, self.stop = _rss(), _rss(), False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop:
            self.max_rss = max(self.max_rss, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop = True
            self.thread.join()
            self.peak_mb = (max(self.max_rss, _rss()) - self.base) / 2**20


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _make_case(name: str, bsz: int, steps: int, dim: int, dtype: torch.dtype, device: torch.device) -> Callable:
    """Return a closure running one forward + backward of case ``name``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(bsz, steps, dim, generator=gen).to(device)
    dy = torch.randn(bsz, steps, dim, generator=gen).to(device)
    if name in SCAN_CASES:
        a = torch.rand(bsz, steps, dim, generator=gen).clamp(0.05, 0.999).to(device, dtype).requires_grad_()
        b = torch.rand(bsz, steps, dim, generator=gen).to(device, dtype).requires_grad_()
        if name == "scan_logspace_fp32":

            def fn() -> Any:
                la, lb = a.log(), b.log()
                h = scan_logspace(la, lb, None, compute_dtype=torch.float32)
                return torch.autograd.grad(h, (a, b), dy.to(h.dtype))

            return fn
        backend = name.removeprefix("scan_")
        return lambda: torch.autograd.grad(scan(a, b, None, backend=backend), (a, b), dy.to(dtype))
    module: nn.Module
    if name in ("mingru", "mingru_loop"):
        module = MinGRU(dim, dim)
    elif name == "minlstm":
        module = MinLSTM(dim, dim)
    elif name in ("gru", "lstm"):
        module = (nn.GRU if name == "gru" else nn.LSTM)(dim, dim, batch_first=True)
    else:
        module = AttentionMixer(dim, n_heads=1)
    module = module.to(device)
    x.requires_grad_()
    amp = dtype in (torch.float16, torch.bfloat16)

    def run() -> Tensor:
        if name == "mingru_loop":
            h, outs = None, []
            for t in range(steps):
                h = module.step(x[:, t], h)
                outs.append(h)
            return torch.stack(outs, 1)
        return module(x)[0]

    def fn() -> Any:
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            y = run()
        module.zero_grad(set_to_none=True)
        return torch.autograd.grad(y, [x, *module.parameters()], dy.to(y.dtype))

    return fn


def _time(fn: Callable, device: torch.device, reps: int) -> tuple[float, float, float]:
    """Best and median wall time (s) over up to ``reps`` runs (1 run if a run takes > 1 s), and peak memory (MB)."""
    times: list[float] = []
    with _Peak(device) as peak:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    while len(times) < reps and sum(times) < 2.0 and times[0] < 1.0:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), peak.peak_mb


def _peak_gbs(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    clock, bus = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock and bus:
        return 2 * clock * 1e3 * bus / 8 / 1e9
    return next((v for k, v in GPU_PEAK_GBS.items() if k in props.name), None)


def _step_vs_window(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Per-token cost of ``Stack.step`` against rerunning a K-step window, for each recurrent backbone."""
    out: dict[str, Any] = {}
    for name in ("mingru", "minlstm", "gru", "lstm", "transformer"):
        stack = build_backbone(name, args.D, 3).to(device).eval()
        xs = torch.randn(args.step_batch, args.window, args.D, device=device)
        with torch.inference_mode():
            _, state = stack(xs)
            step_s, window_s = [], []
            for _ in range(3):
                stack(xs)
                stack.step(xs[:, -1], state)
            for _ in range(args.step_iters):
                _sync(device)
                t0 = time.perf_counter()
                stack.step(xs[:, -1], state)
                _sync(device)
                t1 = time.perf_counter()
                stack(xs)
                _sync(device)
                step_s.append(t1 - t0)
                window_s.append(time.perf_counter() - t1)
        s, w = statistics.median(step_s), statistics.median(window_s)
        out[name] = {"step_ms": 1e3 * s, "window_ms": 1e3 * w, "speedup": w / s}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able results (also written to ``--out/bench.json``)."""
    args = _parse(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu" and os.environ.get("OMP_WAIT_POLICY", "").lower() != "passive":
        # Measured here: with other jobs on the cores, spinning OpenMP threads made nn.GRU 200x slower (T=64).
        print("note: on a shared CPU, run with OMP_WAIT_POLICY=PASSIVE, or OpenMP spin-waits distort the timings")
    args.out.mkdir(parents=True, exist_ok=True)
    peak_gbs = _peak_gbs(device)
    meta = {
        "command": "python -m minrnn.bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "B": args.B, "D": args.D,
        "dtype": args.dtype, "peak_gbs": peak_gbs,
        "memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS growth, 1 kHz samples",
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for case in [c for c in args.cases if c != "step"]:
        if case.startswith(("scan_triton", "scan_fla")) and device.type != "cuda":
            notes.append(f"{case}: skipped, needs CUDA (tested on CPU under TRITON_INTERPRET=1)")
            continue
        if case == "scan_cpu" and device.type != "cpu":
            continue
        _make_case(case, args.B, 64, args.D, dtype, device)()  # warm-up: JIT compile, caches
        for steps in args.T:
            if device.type == "cpu" and steps > CPU_MAX_T.get(case, 1 << 62):
                notes.append(f"{case}: T={steps} skipped on CPU (too slow; > {CPU_MAX_T[case]})")
                continue
            best, median, mem = _time(_make_case(case, args.B, steps, args.D, dtype, device), device, args.reps)
            n = args.B * steps * args.D
            row = {"case": case, "T": steps, "ms": 1e3 * best, "median_ms": 1e3 * median,
                   "Melem_per_s": n / best / 1e6, "peak_mb": mem}  # fmt: skip
            if case in SCAN_CASES and peak_gbs:
                # forward reads a, b and writes h; backward reads a, h, dy and writes da, db
                row["GBps"] = 8 * n * torch.finfo(dtype).bits / 8 / best / 1e9
                row["frac_peak_bw"] = row["GBps"] / peak_gbs
            rows.append(row)
            speed = f"{row['ms']:10.2f} ms {row['Melem_per_s']:9.1f} M/s {mem:8.1f} MB"
            print(f"{case:20s} T={steps:6d} {speed}", flush=True)
    result: dict[str, Any] = {"meta": meta, "results": rows, "notes": notes}
    if "step" in args.cases:
        result["step_vs_window"] = _step_vs_window(args, device)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2))
    _plot(rows, args.out / "bench.png", meta)
    print(format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown table: one row per case, fwd+bwd ms per T (and M elements/s), plus the step-vs-window table."""
    rows = result["results"]
    ts = sorted({r["T"] for r in rows})
    lines = ["| case | " + " | ".join(f"T={t}" for t in ts) + " |", "|---" * (len(ts) + 1) + "|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for t in ts:
            r = next((r for r in rows if r["case"] == case and r["T"] == t), None)
            cells.append("skipped" if r is None else f"{r['ms']:.1f} ms ({r['Melem_per_s']:.0f} M/s)")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    if "step_vs_window" in result:
        lines += ["", "| backbone | step ms | window ms | speed-up |", "|---|---|---|---|"]
        for k, v in result["step_vs_window"].items():
            lines.append(f"| {k} | {v['step_ms']:.3f} | {v['window_ms']:.3f} | {v['speedup']:.1f}x |")
    lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for case in dict.fromkeys(r["case"] for r in rows):
        pts = [(r["T"], r["ms"]) for r in rows if r["case"] == case]
        ax.loglog(*zip(*pts, strict=True), marker="o", label=case)
    ax.set_xlabel("T (sequence length)")
    ax.set_ylabel("forward + backward time (ms)")
    ax.set_title(f"{meta['device']}, B={meta['B']}, D={meta['D']}, {meta['dtype']}, {meta['threads']} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:
        # OpenMP read its wait policy when torch (imported by the minrnn package) loaded it, so restart once with
        # PASSIVE set: spinning idle OpenMP threads made 2-thread runs 10-200x slower on a busy CPU.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "minrnn.bench", *sys.argv[1:]])
    main()
