"""Every GPU measurement of the speed work in one call: scan back-ends, MinGRU vs attention, graphed updates, ensembles.

    python scripts/bench_gpu.py --out docs/gpu            # on the GPU machine: <= 7 min (MODE=bench gpu_session.sh)
    python scripts/bench_gpu.py --smoke --out /tmp/smoke  # anywhere, tiny sizes, ~1 min on 2 CPU cores (the test)

Each section runs in its own subprocess under a hard time limit (``SECTIONS``), so a hang or a crash in one (a
kernel that fails to compile, an out-of-memory) loses only that section; its JSON then records the failure. Files
written into ``--out``:

- ``bench_scan_backends.json``: scan forward + backward at B=8, T=4096, D=1536, bf16, for each Triton back-end
  (triton, triton_chunked, fla, fla_fused): ms, GB/s (fwd reads a, b, writes h; bwd reads a, h, dy, writes da, db:
  8 tensors), fraction of the HBM peak, and the max error against the sequential scan at a small size. Its
  ``"fastest"`` (the quickest back-end whose error is within tolerance) is what ``scan(backend="auto")`` runs on
  CUDA afterwards (minrnn/scan.py, ``cuda_auto_backend``). Goal: >= 50 % of the HBM peak.
- ``bench_layer_vs_attention.json``: one MinGRU layer (each back-end) and one causal SDPA attention layer
  (``minrnn.baselines.AttentionMixer``, flash kernel through ``is_causal=True``), fwd + bwd, B=16, D=128,
  T in {4096, 16384}, bf16 autocast. Goal: MinGRU <= attention.
- ``bench_update_graphs.json``: one Decision-agent update (K=20, batch 64, dim 128, depth 3, dropout 0.1, fp32;
  HalfCheetah sizes obs 17, act 6) eager and CUDA-graphed (agents/graphs.py), for minGRU stacked, minGRU
  interleaved and DT (transformer, interleaved); and recurrent acting for 10 environments eager vs graphed.
  Goals: minGRU stacked <= 2 ms, DT interleaved <= 3 ms.
- ``bench_ensemble.json``: 8 seeds of minGRU-stacked as one vmapped model (agents/ensemble.py) against 8 separate
  processes on the same GPU, in seed-updates per second; and from it an estimate of the hours the 9 datasets x
  {dt, mingru, minlstm} x 3 seeds matrix at 100k updates takes on one GPU (training only, evaluation excluded).
  Goal: >= 5x.
- ``bench_gpu_summary.json``: the headline numbers and the goals met, for README and docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# section -> (seconds allowed on a GPU, output file). 400 s in all, plus start-up: inside the ~8 minutes allowed.
SECTIONS = {
    "scan": (90, "bench_scan_backends.json"),
    "layer": (80, "bench_layer_vs_attention.json"),
    "update": (110, "bench_update_graphs.json"),
    "ensemble": (120, "bench_ensemble.json"),
}
SMOKE_SECONDS = 240  # time limit per section on a loaded 2-core CPU (mostly import time)
SMOKE_BUDGET = 2.0  # seconds of timing loops per section under --smoke
SCAN_TRITON = ("triton", "triton_chunked", "fla", "fla_fused")
OBS, ACT = 17, 6  # HalfCheetah
MATRIX_RUNS, MATRIX_UPDATES = 9 * 3 * 3, 100_000  # datasets x {dt, mingru, minlstm} x seeds, DT's updates


def _sizes(smoke: bool) -> dict[str, Any]:
    """The measured sizes (the issue's) or tiny ones for ``--smoke``."""
    if smoke:
        return {"scan": (2, 64, 32), "layer_B": 2, "layer_D": 16, "layer_T": [64], "K": 5, "batch": 4, "dim": 16,
                "depth": 1, "seeds": 2, "seconds": 0.5, "act_envs": 2}  # fmt: skip
    return {"scan": (8, 4096, 1536), "layer_B": 16, "layer_D": 128, "layer_T": [4096, 16384], "K": 20, "batch": 64,
            "dim": 128, "depth": 3, "seeds": 8, "seconds": 8.0, "act_envs": 10}  # fmt: skip


def _meta(device: torch.device, smoke: bool) -> dict[str, Any]:
    from minrnn.bench import _peak_gbs

    versions = {}
    for mod in ("triton", "fla"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: record it, measure the rest
            versions[mod] = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"command": "python scripts/bench_gpu.py " + " ".join(sys.argv[1:]), "device": name, "smoke": smoke,
            "torch": torch.__version__, **versions, "peak_gbs": _peak_gbs(device)}  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], Any], device: torch.device, budget_s: float, warmup: int = 2) -> dict[str, float]:
    """Median and best ms of ``fn`` over as many calls as fit in ``budget_s`` (at least 3), after ``warmup`` calls
    (compilation, fla's autotuning, graph capture happen there)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"ms": 1e3 * statistics.median(times), "best_ms": 1e3 * min(times), "reps": len(times)}


# --- sections ----------------------------------------------------------------------------------------------------


def _scan_backends(device: torch.device) -> tuple[list[str], list[str]]:
    """Back-ends to time here, and notes on the ones left out."""
    from minrnn.scan import resolve_backend

    if device.type != "cuda":
        return ["cpu", "logspace"], ["not CUDA: CPU back-ends instead of the Triton ones"]
    names, notes = [], []
    for name in SCAN_TRITON:
        try:
            resolve_backend(name, device)
            names.append(name)
        except ValueError as e:
            notes.append(f"{name}: skipped ({e})")
    return names, notes


def section_scan(device: torch.device, smoke: bool, budget: float) -> dict[str, Any]:
    from minrnn.bench import _make_case, _peak_gbs
    from minrnn.scan import scan

    bsz, steps, dim = _sizes(smoke)["scan"]
    peak, rows = _peak_gbs(device), []
    names, notes = _scan_backends(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 300, 64, generator=gen).clamp(0.05, 0.999).to(device).requires_grad_()
    b = torch.rand(2, 300, 64, generator=gen).to(device).requires_grad_()  # b >= 0: the logspace scan needs it
    h0 = torch.rand(2, 64, generator=gen).to(device)
    dy = torch.randn(2, 300, 64, generator=gen).to(device)
    want = scan(a.double(), b.double(), h0.double(), backend="sequential")
    want_grads = torch.autograd.grad(want, (a, b), dy.double())
    for name in names:  # correctness first (forward and gradients, fp32, with h0), then speed
        got = scan(a, b, h0, backend=name)
        grads = torch.autograd.grad(got, (a, b), dy)
        rel = [((g - w).abs().max() / (1 + w.abs().max())).item() for g, w in zip(grads, want_grads)]
        err = max([(got.double() - want).abs().max().item(), *rel])
        t = _time(_make_case(f"scan_{name}", bsz, steps, dim, torch.bfloat16, device), device, budget / len(names) / 2)
        gbs = 8 * bsz * steps * dim * 2 / (t["ms"] / 1e3) / 1e9  # bf16: 2 bytes; 8 tensors (module docstring)
        rows.append({"backend": name, **t, "GBps": gbs, "frac_peak_bw": gbs / peak if peak else None, "max_err": err})
        print(f"scan {name:16s} {t['ms']:8.3f} ms {gbs:8.1f} GB/s err {err:.1e}", flush=True)
    ok = [r for r in rows if r["max_err"] <= 1e-4 and r["backend"] in SCAN_TRITON]
    fastest = min(ok, key=lambda r: r["ms"])["backend"] if ok and device.type == "cuda" else None
    return {"B": bsz, "T": steps, "D": dim, "dtype": "bf16", "results": rows, "fastest": fastest, "notes": notes}


def section_layer(device: torch.device, smoke: bool, budget: float) -> dict[str, Any]:
    from minrnn.baselines import AttentionMixer
    from minrnn.layers import MinGRU

    s = _sizes(smoke)
    bsz, dim = s["layer_B"], s["layer_D"]
    names, notes = _scan_backends(device)
    cases = [(f"mingru[{n}]", n) for n in names] + [("attention_sdpa_causal", None)]
    rows = []
    for steps in s["layer_T"]:
        x = torch.randn(bsz, steps, dim, device=device, requires_grad=True)
        dy = torch.randn(bsz, steps, dim, device=device)
        for label, backend in cases:
            torch.manual_seed(0)
            mod = (MinGRU(dim, dim) if backend else AttentionMixer(dim, n_heads=1)).to(device)
            kw = {"backend": backend} if backend else {}

            def fn(mod=mod, kw=kw, x=x, dy=dy) -> Any:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    y = mod(x, **kw)[0]
                return torch.autograd.grad(y, [x, *mod.parameters()], dy.to(y.dtype))

            t = _time(fn, device, budget / len(cases) / len(s["layer_T"]) / 2)
            rows.append({"case": label, "T": steps, **t})
            print(f"layer {label:24s} T={steps:6d} {t['ms']:8.3f} ms", flush=True)
    ratio = {}
    for steps in s["layer_T"]:
        att = next(r["ms"] for r in rows if r["T"] == steps and r["case"].startswith("attention"))
        best = min(r["ms"] for r in rows if r["T"] == steps and r["case"].startswith("mingru"))
        ratio[str(steps)] = best / att
    return {"B": bsz, "D": dim, "dtype": "bf16 autocast", "results": rows, "best_mingru_over_attention": ratio,
            "notes": notes}  # fmt: skip


def _decision(backbone: str, layout: str, s: dict[str, Any], device: torch.device, **kw: Any):
    from agents.decision import DecisionModel

    return DecisionModel(OBS, ACT, backbone=backbone, layout=layout, dim=s["dim"], depth=s["depth"], dropout=0.1,
                         **kw).to(device)  # fmt: skip


def _batch(s: dict[str, Any], device: torch.device, lead: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """A synthetic training batch: states (*lead, B, K, obs), actions, rtg, timesteps, mask (all True)."""
    shape = (*lead, s["batch"], s["K"])
    return {"states": torch.randn(*shape, OBS, device=device),
            "actions": torch.rand(*shape, ACT, device=device) * 2 - 1,
            "rtg": torch.rand(*shape, device=device) * 1000,
            "timesteps": torch.randint(0, 1000, shape, device=device),
            "mask": torch.ones(shape, dtype=torch.bool, device=device)}  # fmt: skip


def section_update(device: torch.device, smoke: bool, budget: float) -> dict[str, Any]:
    from agents.graphs import GraphedActor

    s, rows = _sizes(smoke), []
    agents = [("mingru", "stacked"), ("mingru", "interleaved"), ("transformer", "interleaved")]
    batch = _batch(s, device)
    for backbone, layout in agents:
        for mode in ("off", "auto"):
            torch.manual_seed(0)
            model = _decision(backbone, layout, s, device).train()
            upd = _updater(model, mode)
            t = _time(lambda upd=upd: upd.step(batch), device, budget / 10, warmup=3)
            rows.append({"agent": f"{backbone}_{layout}", "mode": mode, "graphed": upd.graphed, **t})
            print(f"update {backbone}_{layout:12s} graphed={upd.graphed!s:5s} {t['ms']:8.3f} ms", flush=True)
    acting, n = [], s["act_envs"]
    checks = {"update_graphed_vs_eager": _check_update(s, device), "acting_graphed_vs_eager": _check_acting(s, device)}
    for mode in ("off", "auto"):
        torch.manual_seed(0)
        model = _decision("mingru", "interleaved", s, device).eval()
        actor = GraphedActor(model, n, mode=mode)
        z = torch.zeros(n, dtype=torch.long, device=device)
        args = (torch.randn(n, OBS, device=device), torch.ones(n, device=device), z, torch.zeros(n, ACT, device=device),
                z, torch.ones(n, dtype=torch.bool, device=device))  # fmt: skip
        t = _time(lambda actor=actor, args=args: actor.act(*args), device, budget / 10, warmup=3)
        acting.append({"agent": "mingru_interleaved", "envs": n, "graphed": actor.graphed, **t})
        print(f"act mingru_interleaved n={n} graphed={actor.graphed!s:5s} {t['ms']:8.3f} ms", flush=True)
    return {"K": s["K"], "batch": s["batch"], "dim": s["dim"], "depth": s["depth"], "dtype": "fp32",
            "update": rows, "acting": acting, "checks": checks}  # fmt: skip


def _update_config(lr: float = 1e-4, warmup_steps: int = 10_000) -> Any:
    """DT's optimiser settings (AdamW, weight decay 1e-4, clip 0.25, linear warm-up) as a TrainConfig."""
    from agents.config import TrainConfig

    return TrainConfig(lr=lr, weight_decay=1e-4, warmup_steps=warmup_steps, grad_clip=0.25)


def _updater(model: torch.nn.Module, mode: str, lr: float = 1e-4, warmup_steps: int = 10_000) -> Any:
    """The trainer's update (agents/trainer.py make_updater) of ``model``, graphed as ``mode`` resolves."""
    from agents.graphs import UPDATE_BACKBONES, use_graphs
    from agents.trainer import make_optimizer, make_updater

    cfg = _update_config(lr, warmup_steps)
    graphs = use_graphs(mode, next(model.parameters()).device, model.backbone_name, UPDATE_BACKBONES)
    opt, sched = make_optimizer(model.parameters(), cfg, graphs)
    return make_updater(model, cfg, opt, sched, graphs)


def _check_update(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Three updates of minGRU-stacked (dropout 0) graphed and eager from one init: the largest loss and weight gap
    (the CPU tests check the fallback; this checks the capture itself)."""
    from agents.decision import DecisionModel

    out = []
    for mode in ("off", "auto"):
        torch.manual_seed(0)
        m = DecisionModel(OBS, ACT, backbone="mingru", layout="stacked", dim=s["dim"], depth=s["depth"], dropout=0.0)
        m = m.to(device).train()
        upd = _updater(m, mode, lr=1e-3, warmup_steps=2)
        torch.manual_seed(1)
        losses = torch.stack([upd.step(_batch(s, device)).loss.clone() for _ in range(3)])
        out.append((losses, torch.cat([p.detach().flatten() for p in m.parameters()]), upd.graphed))
    loss_gap = (out[0][0] - out[1][0]).abs().max().item()
    weight_gap = (out[0][1] - out[1][1]).abs().max().item()
    return {"graphed": out[1][2], "max_loss_diff": loss_gap, "max_weight_diff": weight_gap,
            "ok": loss_gap <= 1e-4 and weight_gap <= 1e-4}  # fmt: skip


def _check_acting(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Five acting steps (with a reset) of minGRU-interleaved, graphed against DecisionModel.step_deferred."""
    from agents.graphs import GraphedActor

    torch.manual_seed(0)
    model = _decision("mingru", "interleaved", s, device).eval()
    n, state, gap = s["act_envs"], None, 0.0
    actor = GraphedActor(model, n, mode="auto")
    has_prev = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(5):
        obs, rtg = torch.randn(n, OBS, device=device), torch.rand(n, device=device) * 1000
        ts, prev = torch.full((n,), t, device=device), torch.rand(n, ACT, device=device) * 2 - 1
        prev_ts = (ts - 1).clamp_min(0)
        with torch.no_grad():
            want, state = model.step_deferred(obs, rtg, ts, state, prev, prev_ts, has_prev)
        gap = max(gap, (actor.act(obs, rtg, ts, prev, prev_ts, has_prev) - want).abs().max().item())
        has_prev = torch.ones_like(has_prev)
        if t == 2:
            done = torch.zeros(n, dtype=torch.bool, device=device)
            done[0] = True
            state, has_prev = model.backbone.reset_state(state, done), ~done
            actor.reset(done)
    return {"graphed": actor.graphed, "max_action_diff": gap, "ok": gap <= 1e-4}


def _worker(device: torch.device, smoke: bool, seconds: float, start_at: float) -> None:
    """One of the 'separate processes': eager updates of one minGRU-stacked agent for ``seconds``; prints JSON."""
    s = _sizes(smoke)
    model = _decision("mingru", "stacked", s, device, backend=_vmap_backend(device)).train()  # as the ensemble
    upd, batch = _updater(model, "off"), _batch(s, device)
    for _ in range(3):
        upd.step(batch)
    _sync(device)
    time.sleep(max(0.0, start_at - time.time()))  # all workers start together
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        upd.step(batch)
        n += 1
    _sync(device)
    print(json.dumps({"updates": n, "seconds": time.perf_counter() - t0}), flush=True)


def _vmap_backend(device: torch.device) -> str:
    """A scan back-end that runs under vmap: the CUDA default unless that is fla's (no vmap rule); on CPU logspace
    (the numba kernel has none either)."""
    from minrnn.scan import cuda_auto_backend

    if device.type != "cuda":
        return "logspace"
    name = cuda_auto_backend()
    return "triton" if name.startswith("fla") else name


def section_ensemble(device: torch.device, smoke: bool, budget: float) -> dict[str, Any]:
    from agents.ensemble import Ensemble

    s = _sizes(smoke)
    n = s["seeds"]
    backend = _vmap_backend(device)
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        models.append(_decision("mingru", "stacked", s, device, backend=backend).train())
    ens = Ensemble(models, _update_config())
    batch = _batch(s, device, lead=(n,))
    t = _time(lambda: ens.step(batch), device, min(s["seconds"], budget / 4), warmup=3)
    ens_rate = n * 1e3 / t["ms"]
    print(f"ensemble N={n}: {t['ms']:.3f} ms per step, {ens_rate:.1f} seed-updates/s", flush=True)
    start_at = time.time() + (5.0 if smoke else 30.0)  # time for every worker to import torch and warm up
    cmd = [sys.executable, __file__, "--worker", "--device", device.type, "--seconds", str(s["seconds"]),
           "--start-at", str(start_at)] + (["--smoke"] if smoke else [])  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    deadline = start_at + s["seconds"] + 60.0  # start-up and warm-up fit before start_at; 60 s of slack
    try:
        outs = [json.loads(p.communicate(timeout=max(1.0, deadline - time.time()))[0].strip().splitlines()[-1])
                for p in procs]  # fmt: skip
    finally:
        for p in procs:
            p.kill()  # no-op for the ones that finished
    sep_rate = sum(o["updates"] / o["seconds"] for o in outs)
    print(f"separate x{n}: {sep_rate:.1f} updates/s in total", flush=True)
    rate = max(ens_rate, sep_rate)
    return {"seeds": n, "agent": "mingru_stacked", "K": s["K"], "batch": s["batch"], "ensemble": {**t,
            "seed_updates_per_s": ens_rate}, "separate_processes": outs, "separate_updates_per_s": sep_rate,
            "speedup": ens_rate / sep_rate if sep_rate else None,
            "matrix_estimate": {"runs": MATRIX_RUNS, "updates_each": MATRIX_UPDATES, "updates_per_s": rate,
                                "hours": MATRIX_RUNS * MATRIX_UPDATES / rate / 3600,
                                "assumes": "every backbone trains at the measured minGRU-stacked rate (the faster of "
                                           "ensemble and separate processes); evaluation excluded"}}  # fmt: skip


RUNNERS = {"scan": section_scan, "layer": section_layer, "update": section_update, "ensemble": section_ensemble}


# --- driver ------------------------------------------------------------------------------------------------------


def _summary(out: Path, smoke: bool) -> dict[str, Any]:
    """Headline numbers and the issue's goals from the section files (missing sections: None)."""

    def load(name: str) -> dict[str, Any]:
        try:
            return json.loads((out / SECTIONS[name][1]).read_text())
        except (OSError, ValueError):
            return {}

    scan, layer, upd, ens = load("scan"), load("layer"), load("update"), load("ensemble")
    best_bw = max((r["frac_peak_bw"] for r in scan.get("results", []) if r.get("frac_peak_bw")), default=None)
    # "graphed" = mode auto: CUDA graphs on a GPU, the eager fallback elsewhere (each row says which ran)
    ms = {r["agent"] + ("_graphed" if r["mode"] == "auto" else "_eager"): r["ms"] for r in upd.get("update", [])}
    ratios = layer.get("best_mingru_over_attention", {})
    goals = {
        "scan_frac_peak_bw>=0.5": None if best_bw is None else best_bw >= 0.5,
        "mingru_layer<=attention": None if not ratios else all(v <= 1.0 for v in ratios.values()),
        "mingru_stacked_update<=2ms": _le(ms.get("mingru_stacked_graphed"), 2.0),
        "dt_interleaved_update<=3ms": _le(ms.get("transformer_interleaved_graphed"), 3.0),
        "ensemble>=5x_separate": _le(5.0, ens.get("speedup")),
    }
    checks = {k: v.get("ok") for k, v in upd.get("checks", {}).items()}
    checks["scan_backends_max_err"] = {r["backend"]: r["max_err"] for r in scan.get("results", [])}
    return {"smoke": smoke, "checks": checks, "scan_fastest": scan.get("fastest"), "scan_best_frac_peak_bw": best_bw,
            "mingru_over_attention": ratios, "update_ms": ms, "ensemble_speedup": ens.get("speedup"),
            "matrix_hours": ens.get("matrix_estimate", {}).get("hours"), "goals_met": goals}  # fmt: skip


def _le(x: float | None, y: float | None) -> bool | None:
    return None if x is None or y is None else x <= y


def _run_section(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run one section in a subprocess under its time limit; on failure write its error into the section file."""
    limit = SMOKE_SECONDS if args.smoke else SECTIONS[name][0]
    budget = SMOKE_BUDGET if args.smoke else 0.6 * limit
    cmd = [sys.executable, __file__, "--section", name, "--out", str(out), "--device", args.device,
           "--budget", str(budget)] + (["--smoke"] if args.smoke else [])  # fmt: skip
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, timeout=limit, capture_output=True, text=True)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        status, log = f"timeout after {limit} s", (e.stdout or b"").decode(errors="replace")
    print(f"== {name}: {status} in {time.time() - t0:.0f} s\n{log[-4000:]}", flush=True)
    if status != "ok":
        (out / SECTIONS[name][1]).write_text(json.dumps({"status": status, "log_tail": log[-4000:]}, indent=2))
    return {"section": name, "status": status, "seconds": time.time() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu", help="folder for the JSON files")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs on CPU (for the tests)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    p.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)  # internal: run one, in-process
    p.add_argument("--budget", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # internal: one separate process
    p.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu with --smoke")
    if args.worker:
        _worker(device, args.smoke, args.seconds, args.start_at)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.section:
        result = RUNNERS[args.section](device, args.smoke, args.budget)
        result = {"meta": _meta(device, args.smoke), "status": "ok", **result}
        (args.out / SECTIONS[args.section][1]).write_text(json.dumps(result, indent=2))
        return 0
    runs = [_run_section(name, args, args.out) for name in args.sections]
    summary = {"meta": _meta(device, args.smoke), "sections": runs, **_summary(args.out, args.smoke)}
    (args.out / "bench_gpu_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if all(r["status"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
