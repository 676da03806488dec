"""``run_rl.py bench agents``: training-step time and acting latency of every backbone and layout.

Training: one AdamW update (forward, masked MSE, backward, clip, step) on a random batch of B windows of K steps,
DT's model size (128 wide, 3 layers, dropout 0.1), obs 11 / act 3 (Hopper). Acting: ``DecisionPolicy.act`` for
n parallel slots at context K, in window mode (rerun K steps) and recurrent mode (one step), after a warm-up
long enough to fill the window. Median over repeats; JSON out plus a printed table. ``--device cuda`` times on the
GPU (synchronised before each clock read) and adds the training step's peak GPU memory. ``--cuda-graphs on``
(or ``auto``) times the update as ``agents.graphs.GraphedUpdate`` replays it, where the device and backbone allow;
the ``cuda_graphs`` column says which update each row timed.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (when this module is imported first; run_rl.py does the same): idle OpenMP threads
# sleep instead of spinning, which made 2-thread runs 10-200x slower on a busy CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.config import BACKBONE_NAMES, LAYOUTS, RECURRENT_BACKBONES, TrainConfig
from agents.policy import DecisionPolicy
from agents.rundir import machine_info

__all__ = ["add_bench_args", "bench_acting", "bench_train_step", "run_bench"]

OBS_DIM, ACT_DIM = 11, 3


def add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbones", nargs="+", default=list(BACKBONE_NAMES), choices=BACKBONE_NAMES)
    p.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    p.add_argument("--contexts", type=int, nargs="+", default=[20, 200], help="K values for the training step")
    p.add_argument("--batch-size", type=int, default=64, help="training batch (DT: 64)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions per case (median reported)")
    p.add_argument("--acting-envs", type=int, default=10, help="parallel slots for the acting latency")
    p.add_argument("--acting-context", type=int, default=20, help="K for the acting latency")
    p.add_argument("--acting-steps", type=int, default=50, help="timed act() calls per case")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--skip-train", action="store_true", help="only measure acting")
    p.add_argument("--skip-acting", action="store_true", help="only measure training steps")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument(
        "--cuda-graphs", default="off", choices=("auto", "on", "off"), help="time the CUDA-graphed update (off)"
    )
    p.add_argument("--out", default="bench_out/agents.json", help="JSON output file")


def _model(
    backbone: str, layout: str, dim: int, depth: int, dropout: float = 0.1, device: str = "cpu"
) -> torch.nn.Module:
    from agents.trainer import build_model

    cfg = TrainConfig(backbone=backbone, layout=layout, dim=dim, depth=depth, dropout=dropout)
    return build_model(cfg, OBS_DIM, ACT_DIM).to(device)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def bench_train_step(
    backbone: str,
    layout: str,
    K: int,
    batch_size: int = 64,
    repeat: int = 5,
    dim: int = 128,
    depth: int = 3,
    device: str = "cpu",
    cuda_graphs: str = "off",
) -> dict[str, Any]:
    """Median seconds of one update of the trainer (``agents.trainer.make_updater``, DT's optimiser settings),
    captured as a CUDA graph where ``cuda_graphs`` resolves to on for this device and backbone (``on`` raises where
    it cannot); returns a JSON-ready row, with the median CPU seconds of this process beside (`cpu_ms_per_step`: with
    one thread, one core's cost however busy the machine is)."""
    from agents.graphs import UPDATE_BACKBONES, use_graphs
    from agents.trainer import build_model, make_optimizer, make_updater

    torch.manual_seed(0)
    B = batch_size
    cfg = TrainConfig(backbone=backbone, layout=layout, dim=dim, depth=depth, context_len=K, batch_size=B)
    model = build_model(cfg, OBS_DIM, ACT_DIM).to(device).train()
    graphs = use_graphs(cuda_graphs, torch.device(device), backbone, UPDATE_BACKBONES)
    optimizer, scheduler = make_optimizer(model.parameters(), cfg, graphs)
    updater = make_updater(model, cfg, optimizer, scheduler, graphs)
    batch = {
        "states": torch.randn(B, K, OBS_DIM),
        "actions": torch.rand(B, K, ACT_DIM) * 2 - 1,
        "rtg": torch.rand(B, K) * 3000,
        "timesteps": torch.randint(0, max(1, 1000 - K + 1), (B, 1)) + torch.arange(K),
        "mask": torch.ones(B, K, dtype=torch.bool),
    }
    batch["mask"][: B // 4, : K // 4] = False  # some left padding, as sampled windows have
    batch = {k: v.to(device) for k, v in batch.items()}
    cuda = str(device).startswith("cuda")

    def update() -> None:
        updater.step(batch).loss.item()  # the loop's one host sync per update

    if graphs:
        update()  # warm-up (allocations, kernel compilation; the graph's capture)
        flops = None
    else:  # the warm-up, counted: forward, backward and optimizer step, whatever the device's speed
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            update()
        flops = counter.get_total_flops()
    _sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times, cpu_times = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        update()
        _sync(device)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    sec, cpu_sec = statistics.median(times), statistics.median(cpu_times)
    tokens = B * K * model.tokens_per_step
    row = {
        "backbone": backbone, "layout": layout, "K": K, "batch": B, "ms_per_step": 1e3 * sec,
        "tokens_per_s": tokens / sec, "params": sum(p.numel() for p in model.parameters()), "device": str(device),
        "cuda_graphs": "on" if graphs else "off",
        # this process's CPU seconds: with one thread, the cost on one core whatever else runs on the machine
        "cpu_ms_per_step": 1e3 * cpu_sec, "updates_per_cpu_min": 60.0 / cpu_sec,
        "gflop_per_step": None if flops is None else flops / 1e9,  # torch.utils.flop_counter's count of one update
    }  # fmt: skip
    if cuda:
        row["peak_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return row


def bench_acting(
    backbone: str,
    layout: str,
    mode: str,
    n_envs: int = 10,
    K: int = 20,
    steps: int = 50,
    dim: int = 128,
    depth: int = 3,
    device: str = "cpu",
) -> dict[str, Any]:
    """Median milliseconds per ``act`` call for n slots, after K + 5 warm-up calls (``act`` returns NumPy, so each
    call already waits for the device), in wall time and in this process's CPU time."""
    torch.manual_seed(0)
    policy = DecisionPolicy(_model(backbone, layout, dim, depth, device=device), 3600.0, mode, K)
    policy.reset(n_envs)
    rng = np.random.default_rng(0)
    done = np.ones(n_envs, dtype=bool)
    reward = np.zeros(n_envs)
    times, cpu_times = [], []
    for i in range(K + 5 + steps):
        obs = rng.standard_normal((n_envs, OBS_DIM))
        t0, c0 = time.perf_counter(), time.process_time()
        policy.act(obs, reward, done)
        if i >= K + 5:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        done, reward = np.zeros(n_envs, dtype=bool), rng.random(n_envs)
    return {"backbone": backbone, "layout": layout, "mode": mode, "n_envs": n_envs, "K": K,
            "ms_per_step": 1e3 * statistics.median(times), "cpu_ms_per_step": 1e3 * statistics.median(cpu_times),
            "device": str(device)}  # fmt: skip


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    fmt = [max(len(c), *(len(_cell(r[c])) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, fmt, strict=True))]
    lines += ["  ".join(_cell(r[c]).ljust(w) for c, w in zip(cols, fmt, strict=True)) for r in rows]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) and v >= 100 else f"{v:.3g}" if isinstance(v, float) else str(v)


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark ``args`` describes, print tables, write JSON to ``args.out``."""
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    meta = {**machine_info(args.device), "time": time.strftime("%Y-%m-%d %H:%M:%S"), "device": args.device}
    out: dict[str, Any] = {"meta": meta, "train": [], "acting": []}
    if not args.skip_train:
        for K in args.contexts:
            for layout in args.layouts:
                for backbone in args.backbones:
                    row = bench_train_step(
                        backbone, layout, K, args.batch_size, args.repeat, args.dim, args.depth, args.device,
                        args.cuda_graphs,
                    )  # fmt: skip
                    out["train"].append(row)
                    print(f"train {backbone:11s} {layout:11s} K={K:<4d} {row['ms_per_step']:8.1f} ms/step", flush=True)
        columns = ["backbone", "layout", "K", "batch", "cuda_graphs", "ms_per_step", "cpu_ms_per_step", "tokens_per_s"]
        print("\n" + _table(out["train"], columns))
    if not args.skip_acting:
        for layout in args.layouts:
            for backbone in args.backbones:
                modes = ("window", "recurrent") if backbone in RECURRENT_BACKBONES else ("window",)
                for mode in modes:
                    out["acting"].append(
                        bench_acting(
                            backbone,
                            layout,
                            mode,
                            args.acting_envs,
                            args.acting_context,
                            args.acting_steps,
                            args.dim,
                            args.depth,
                            args.device,
                        )  # fmt: skip
                    )
        print(
            "\n"
            + _table(out["acting"], ["backbone", "layout", "mode", "n_envs", "K", "ms_per_step", "cpu_ms_per_step"])
        )
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwritten: {path}")
    return out
