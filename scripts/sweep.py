"""Run a matrix of datasets x backbones x seeds with `run_rl.py train`, then tabulate and plot the results.

Resumable: a run whose results.json exists is skipped, a run with a checkpoint but no results is resumed, and
the table is rebuilt from whatever results exist. A run made on other data than the dataset its config names today
(a dataset rebuilt under the same id, compared by content fingerprint) is stale: it is moved aside to
OUT/<config>/<backbone>/stale/ (never deleted) and run again.

Engines (`--engine`): each run is a `run_rl.py train` subprocess with `--threads` torch threads.
- `ray` (default when Ray is installed, `pip install -e ".[ray]"`): each run is a Ray task holding `--cpus-per-run`
  CPUs (default: --threads) and `--gpus-per-run` GPUs. Fractions share a GPU; Ray sets CUDA_VISIBLE_DEVICES to the
  task's GPUs and the run inherits it (with the default 0, Ray may hide every GPU from the run, so pass
  --gpus-per-run for GPU training). Without `--address` a local Ray starts with --jobs x --cpus-per-run CPUs, so
  --jobs runs go at once; `--address auto` or `--address HOST:6379` joins a running cluster (`ray start --head`),
  whose resources then decide how many run at once. On a cluster, every node needs this checkout and OUT at the
  same paths (a shared file system): a task runs `run_rl.py` from the driver's checkout and writes into OUT.
  The resume decision (--resume / --overwrite) is made when the task starts, on the node that runs it, so a task
  Ray retries after a lost node continues from its last checkpoint.
- `pool`: the old local pool of `--jobs` threads, each waiting on one subprocess; the fallback without Ray.

    python scripts/sweep.py run --configs hopper-medium walker2d-medium --backbones transformer mingru minlstm \
        --seeds 0 1 2 --steps 20000 --out runs/sweep --jobs 2 --set eval_every=5000
    python scripts/sweep.py run ... --engine ray --address auto --cpus-per-run 4 --gpus-per-run 0.5
    python scripts/sweep.py table --out runs/sweep          # table.csv, table.json, table.md, curves_*.png
    python scripts/sweep.py table --out runs/sweep --docs docs --splice docs/RESULTS.md   # ... into the docs too

Layout: OUT/<config>/<backbone>/seed<k>/ (a `run_rl.py train` run directory each).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's packages, installed or not

from envs.scores import normalized_score  # noqa: E402

#: Keys a sweep's --set does not change for the `dt` agent (configs/dt.yaml: DT as Chen et al. ran it).
DT_FIXED = ("layout", "acting_mode", "backbone")
#: Agents in table order: DT first, then attention over stacked tokens (an ablation), then the recurrent backbones.
AGENTS = ("dt", "transformer", "mingru", "minlstm", "gru", "lstm")


def run_dir(out: Path, config: str, backbone: str, seed: int) -> Path:
    return out / config / backbone / f"seed{seed}"


def train_command(
    out: Path,
    config: str,
    backbone: str,
    seed: int,
    steps: int,
    threads: int,
    overrides: list[str],
    recurrent_overrides: list[str] = (),
) -> list[str]:
    """The `run_rl.py train` command for one cell: --resume when a checkpoint is there; --overwrite when an earlier
    sweep was killed before the cell's first checkpoint (its directory then holds nothing to continue from)."""
    rd = run_dir(out, config, backbone, seed)
    agent = ["--config", "dt"] if backbone == "dt" else []  # DT's recipe first; the dataset's config on top
    cmd = [
        sys.executable,
        str(ROOT / "run_rl.py"),
        "train",
        *agent,
        "--config",
        str(ROOT / "configs" / f"{config}.yaml"),
        "--backbone",
        "transformer" if backbone == "dt" else backbone,
        "--seed",
        str(seed),
        "--steps",
        str(steps),
        "--out",
        str(rd),
        "--set",
        f"threads={threads}",
        "--set",
        "progress=false",
    ]
    for o in overrides:
        if backbone == "dt" and o.split("=", 1)[0] in DT_FIXED:
            continue  # dt means DT's token layout and acting, whatever the other agents use
        cmd += ["--set", o]
    for o in recurrent_overrides if backbone not in ("transformer", "dt") else []:
        cmd += ["--set", o]
    if (rd / "checkpoints" / "latest").is_file():
        cmd.append("--resume")
    elif rd.is_dir() and not (rd / "results.json").exists():
        cmd.append("--overwrite")
    return cmd


def current_data(configs: list[str], overrides: list[str]) -> dict[str, dict]:
    """config name -> summary (with fingerprint) of the dataset it trains on today; exits naming any that is missing."""
    from agents.config import load_config
    from envs import load_dataset

    summaries, problems = {}, []
    for c in configs:
        try:
            cfg = load_config(ROOT / "configs" / f"{c}.yaml", overrides)
            summaries[c] = load_dataset(cfg.dataset, env_id=cfg.env or None).summary()
        except (FileNotFoundError, ValueError, KeyError) as err:
            problems.append(f"{c}: {err}")
    if problems:
        sys.exit("cannot load the data of every config:\n  " + "\n  ".join(problems))
    return summaries


def same_data(run_summary: dict, now: dict) -> bool:
    """Whether a run's dataset.json describes the dataset ``now`` (same content fingerprint)."""
    return run_summary.get("fingerprint") == now["fingerprint"]


def set_aside_stale(out: Path, cells: list[tuple[str, str, int]], data: dict[str, dict]) -> list[Path]:
    """Move every run (finished or not) whose dataset.json differs from today's data to .../stale/; the new paths."""
    moved = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for cell in cells:
        rd = run_dir(out, *cell)
        summary_path = rd / "dataset.json"
        if not summary_path.is_file() or same_data(json.loads(summary_path.read_text()), data[cell[0]]):
            continue
        dest = rd.parent / "stale" / f"{rd.name}-{stamp}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        rd.rename(dest)
        log = rd.parent / f"{rd.name}.log"
        if log.exists():
            log.rename(dest.parent / f"{dest.name}.log")
        moved.append(dest)
        name = data[cell[0]]["name"]
        print(f"{'/'.join(map(str, cell))}: trained on other data than {name} holds now; moved to {dest}")
    return moved


def existing_cells(out: Path, configs: list[str] | None = None) -> list[tuple[str, str, int]]:
    """(config, backbone, seed) of every run directory under `out` (of `configs` only, if given)."""
    found = []
    for rd in sorted(out.glob("*/*/seed*")):
        if rd.is_dir() and rd.name[4:].isdigit() and (configs is None or rd.parent.parent.name in configs):
            found.append((rd.parent.parent.name, rd.parent.name, int(rd.name[4:])))
    return found


def run_cell(
    out: Path, cell: tuple[str, str, int], steps: int, threads: int, overrides: list[str], recurrent: list[str]
) -> tuple[tuple[str, str, int], int, float]:
    """Train one cell to completion (or failure) as a `run_rl.py train` subprocess, appending to its .log next to
    the run directory; (cell, exit code, seconds). The command, and so --resume, is decided here, when it starts."""
    rd = run_dir(out, *cell)
    rd.parent.mkdir(parents=True, exist_ok=True)
    cmd = train_command(out, *cell, steps, threads, overrides, recurrent)
    t0 = time.time()
    with open(rd.parent / f"{rd.name}.log", "a") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return cell, rc, time.time() - t0


def _report(cell: tuple, rc: int, seconds: float) -> None:
    print(f"{'/'.join(map(str, cell))}: exit {rc} after {seconds:.0f} s", flush=True)


def run_pool(args: argparse.Namespace, out: Path, todo: list[tuple[str, str, int]]) -> list[tuple]:
    """The local engine: `--jobs` threads, each waiting on one subprocess; returns the failed cells."""
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(run_cell, out, c, args.steps, args.threads, args.set, args.recurrent_set) for c in todo]
        for job in as_completed(jobs):
            cell, rc, seconds = job.result()
            _report(cell, rc, seconds)
            if rc != 0:
                failed.append(cell)
    return failed


def run_ray(args: argparse.Namespace, out: Path, todo: list[tuple[str, str, int]]) -> list[tuple]:
    """The Ray engine: one task per cell with its CPU/GPU share; returns the failed cells (a task that raised or
    whose node was lost counts as failed; its run directory stays resumable)."""
    import ray

    module = sys.modules.get(run_cell.__module__)
    if module is not None and module.__name__ != "__main__":
        # Imported as a module (`import sweep`): Ray's workers could not import this script by that name, so ship
        # its functions by value (cloudpickle's register_pickle_by_value, as for __main__ and unlisted modules).
        ray.cloudpickle.register_pickle_by_value(module)
    cpus = args.cpus_per_run if args.cpus_per_run is not None else args.threads
    started_here = not ray.is_initialized()
    if started_here:
        local = {"num_cpus": math.ceil(args.jobs * cpus), "include_dashboard": False} if args.address is None else {}
        ray.init(address=args.address, log_to_driver=False, **local)
    try:
        task = ray.remote(run_cell).options(num_cpus=cpus, num_gpus=args.gpus_per_run, max_retries=1)
        pending = {task.remote(out, c, args.steps, args.threads, args.set, args.recurrent_set): c for c in todo}
        failed = []
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready)
            try:
                _, rc, seconds = ray.get(ready)
            except ray.exceptions.RayError as err:
                print(f"{'/'.join(map(str, cell))}: Ray task failed: {type(err).__name__}: {err}", flush=True)
                failed.append(cell)
                continue
            _report(cell, rc, seconds)
            if rc != 0:
                failed.append(cell)
        return failed
    finally:
        if started_here:
            ray.shutdown()


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def run_matrix(args: argparse.Namespace) -> None:
    out = Path(args.out)
    # Seed-major: a sweep cut short still covers every dataset and backbone before it adds seeds.
    cells = [(c, b, s) for s in args.seeds for c in args.configs for b in args.backbones]
    if args.check_data:
        set_aside_stale(out, existing_cells(out, args.configs), current_data(args.configs, args.set))
    todo = [cell for cell in cells if not (run_dir(out, *cell) / "results.json").exists()]
    engine = args.engine if args.engine != "auto" else ("ray" if ray_available() else "pool")
    print(f"{len(cells)} runs, {len(cells) - len(todo)} already finished, {len(todo)} to go ({engine})")
    failed = (run_ray if engine == "ray" else run_pool)(args, out, todo) if todo else []
    write_table(out)
    if failed:
        sys.exit(f"{len(failed)} runs failed: {failed}; see their .log files next to the run directories")


def read_runs(out: Path) -> list[dict]:
    """One row per finished run: config, backbone, seed, last and best scores, wall time, and its eval curve."""
    rows = []
    for res_path in sorted(out.glob("*/*/seed*/results.json")):
        rd = res_path.parent
        res = json.loads(res_path.read_text())
        evals = (
            [json.loads(line) for line in (rd / "evals.jsonl").read_text().splitlines() if line.strip()]
            if (rd / "evals.jsonl").exists()
            else []
        )
        scores = [e["score"] for e in evals]
        data = json.loads((rd / "dataset.json").read_text()) if (rd / "dataset.json").exists() else {}
        rows.append(
            {
                "config": rd.parent.parent.name,
                "backbone": rd.parent.name,
                "seed": int(rd.name[4:]),
                "last": res["normalized_score_mean"],
                "best": max(scores) if scores else res["normalized_score_mean"],
                "return_last": res["return_mean"],
                "steps": res["steps"],
                "wall_time_s": res["wall_time_s"],
                "score_reference": res["score_reference"],
                "acting_mode": res["acting_mode"],
                "layout": res.get("layout"),
                "train_mode": res.get("train_mode"),
                "batch_size": res.get("batch_size"),
                "machine": _machine_text(res.get("machine")),
                "data": _data_score(data),
                "curve": [(e["step"], e["score"]) for e in evals],
            }
        )
    return rows


def _data_score(summary: dict) -> float | None:
    """The behaviour data's D4RL score (its mean episode return, normalised), or None when it can't be scored."""
    if summary.get("score_reference", "d4rl") != "d4rl" or "return_mean" not in summary:
        return None
    try:
        return float(normalized_score(summary.get("env_id", ""), [summary["return_mean"]])[0])
    except ValueError:
        return None


#: Dataset levels in the order papers list them; PAPER_LEVELS make the paper's 9-dataset average.
LEVEL_ORDER = ("medium", "medium-replay", "medium-expert", "expert")
PAPER_LEVELS = LEVEL_ORDER[:3]


def config_order(config: str) -> tuple:
    """Sort key: by environment, then by level in LEVEL_ORDER (others after), then by name."""
    env, _, level = config.partition("-")
    return (env, LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER), config)


def data_scores(rows: list[dict]) -> dict[str, float]:
    """config -> its behaviour data's score, for the configs whose data could be scored."""
    return {r["config"]: r["data"] for r in rows if r.get("data") is not None}


def compare_to(rows: list[dict], base: str, n_boot: int = 2000, seed: int = 0) -> list[str]:
    """Markdown lines: each backbone's last score minus `base`'s, averaged over the datasets both have runs on.

    The 95 % interval is a stratified bootstrap (as rliable does): within each dataset, each backbone's seeds are
    resampled with replacement, the per-dataset means recomputed, and the difference averaged over datasets again.
    It says how much the average could move with other seeds on these datasets, not how it would move on others.
    Computed only where every dataset has ≥2 seeds on both sides (with one seed there is nothing to resample).
    """
    rng = np.random.default_rng(seed)
    by = {}
    for r in rows:
        by.setdefault((r["config"], r["backbone"]), []).append(r["last"])
    out = []
    for b in backbones_in(rows):
        if b == base:
            continue
        common = sorted({c for c, bb in by if bb == b and (c, base) in by}, key=config_order)
        if not common:
            continue
        diffs = [np.mean(by[(c, b)]) - np.mean(by[(c, base)]) for c in common]
        ahead = sum(d > 0 for d in diffs)
        ci = "–"
        if all(len(by[(c, b)]) >= 2 and len(by[(c, base)]) >= 2 for c in common):
            boot = np.zeros(n_boot)
            for c in common:
                x, y = np.asarray(by[(c, b)]), np.asarray(by[(c, base)])
                boot += rng.choice(x, (n_boot, len(x))).mean(1) - rng.choice(y, (n_boot, len(y))).mean(1)
            lo, hi = np.percentile(boot / len(common), [2.5, 97.5])
            ci = f"[{lo:+.1f}, {hi:+.1f}]"
        out.append(f"| {b} | {np.mean(diffs):+.1f} | {ci} | {ahead} of {len(common)} |")
    if not out:
        return []
    head = [
        f"| backbone | last score − {base}, mean over datasets | 95 % bootstrap interval | datasets ahead |",
        "|---|---|---|---|",
    ]
    return head + out


def backbones_in(rows: list[dict]) -> list[str]:
    """The agents that have runs, in :data:`AGENTS` order (dt, then attention, then the recurrent backbones)."""
    return [b for b in AGENTS if any(r["backbone"] == b for r in rows)]


def _machine_text(m: dict | None) -> str:
    if not m:
        return "unrecorded"
    where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores)"
    return f"{where}, torch {m['torch']}, {m['threads']} thread(s)"


def _mean_std(xs: list[float]) -> str:
    return f"{np.mean(xs):.1f} ± {np.std(xs):.1f}" if xs else "–"


def write_table(out: Path) -> str:
    """Write table.csv / table.json (per run) and table.md (mean ± std over seeds, last and best)."""
    rows = read_runs(out)
    if not rows:
        print("no finished runs yet")
        return ""
    flat = [{k: v for k, v in r.items() if k != "curve"} for r in rows]
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    (out / "table.json").write_text(json.dumps(rows, indent=1))

    configs = sorted({r["config"] for r in rows}, key=config_order)
    backbones = backbones_in(rows)
    pick = {(r["config"], r["backbone"]): [] for r in rows}
    for r in rows:
        pick[(r["config"], r["backbone"])].append(r)
    data = data_scores(rows)
    lines = [
        "| dataset | data | " + " | ".join(f"{b} last | {b} best" for b in backbones) + " |",
        "|---|---|" + "---|---|" * len(backbones),
    ]
    means = {}  # (config, backbone) -> (mean last, mean best)
    for c in configs:
        cells = []
        for b in backbones:
            rs = pick.get((c, b), [])
            cells += [_mean_std([r["last"] for r in rs]) + f" (n={len(rs)})", _mean_std([r["best"] for r in rs])]
            if rs:
                means[(c, b)] = (np.mean([r["last"] for r in rs]), np.mean([r["best"] for r in rs]))
        d = f"{data[c]:.1f}" if c in data else "–"
        lines.append(f"| {c} | {d} | " + " | ".join(cells) + " |")
    paper9 = [c for c in configs if c.partition("-")[2] in PAPER_LEVELS]
    groups = [("average", configs)]
    if paper9 and len(paper9) < len(configs):
        groups.append(("average, medium / medium-replay / medium-expert", paper9))
    for name, group in groups:
        # Averages only over datasets every backbone has, so the backbones are compared on the same sets.
        common = [c for c in group if all((c, b) in means for b in backbones)]
        if not common:
            continue
        d = f"{np.mean([data[c] for c in common]):.1f}" if all(c in data for c in common) else "–"
        cells = [f"{np.mean([means[(c, b)][i] for c in common]):.1f}" for b in backbones for i in (0, 1)]
        lines.append(f"| **{name}** ({len(common)} datasets) | {d} | " + " | ".join(cells) + " |")
    steps = sorted({r["steps"] for r in rows})
    batches = sorted({str(r["batch_size"]) for r in rows if r.get("batch_size")}) or ["unrecorded"]
    machines = sorted({r.get("machine", "unrecorded") for r in rows})
    wall = {}
    for b in backbones:
        w = [r["wall_time_s"] / 60 for r in rows if r["backbone"] == b]
        wall[b] = f"{np.median(w):.1f} min ({min(w):.1f}–{max(w):.1f})"
    lines += (
        [""]
        + compare_to(rows, "dt" if any(r["backbone"] == "dt" for r in rows) else "transformer")
        + [
            "",
            f"Steps per run: {', '.join(map(str, steps))}; batch {', '.join(batches)}. Wall time per run, median "
            "(min–max): "
            + ", ".join(f"{b} {wall[b]}" for b in backbones)
            + f". Machine: {'; '.join(machines)}. Scores: D4RL-normalised, "
            "mean ± std over seeds of each run's last and best evaluation; data: the behaviour data's mean episode "
            "return, normalised. Averages cover the datasets that every backbone has runs on.",
        ]
    )
    md = "\n".join(lines) + "\n"
    (out / "table.md").write_text(md)
    plot_curves(rows, out)
    plot_scores(rows, out)
    print(md)
    return md


def _draw_curves(ax, rows: list[dict], config: str, data: float | None) -> None:
    from matplotlib.ticker import MaxNLocator

    for b in backbones_in([r for r in rows if r["config"] == config]):
        curves = [dict(r["curve"]) for r in rows if r["config"] == config and r["backbone"] == b and r["curve"]]
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(cv) for cv in curves)))
        ys = np.array([[cv[s] for s in steps] for cv in curves])
        m, sd = ys.mean(0), ys.std(0)
        ax.plot(steps, m, label=f"{b} (n={len(curves)})")
        ax.fill_between(steps, m - sd, m + sd, alpha=0.2)
    if data is not None:
        ax.axhline(data, color="k", lw=1, ls="--", label="behaviour data")
    ax.set_title(config, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    ax.grid(alpha=0.3)


def plot_curves(rows: list[dict], out: Path) -> None:
    """curves_<config>.png: normalised score against step, mean ± std over seeds, one line per backbone, the
    behaviour data's score dashed; curves.png: all datasets on one grid (a row per environment)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r["config"] for r in rows}, key=config_order)
    data = data_scores(rows)
    for c in configs:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        _draw_curves(ax, rows, c, data.get(c))
        ax.set_xlabel("gradient step")
        ax.set_ylabel("D4RL-normalised score")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"curves_{c}.png", dpi=110)
        plt.close(fig)
    envs = sorted({config_order(c)[0] for c in configs})
    per_env = [[c for c in configs if config_order(c)[0] == e] for e in envs]
    ncol = max(len(cs) for cs in per_env)
    fig, axes = plt.subplots(len(envs), ncol, figsize=(3.2 * ncol, 2.6 * len(envs)), squeeze=False)
    for i, cs in enumerate(per_env):
        for j in range(ncol):
            ax = axes[i][j]
            if j >= len(cs):
                ax.axis("off")
                continue
            _draw_curves(ax, rows, cs[j], data.get(cs[j]))
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, [lab.split(" (")[0] for lab in labels], loc="lower center", ncol=len(labels), fontsize=8)
    fig.supxlabel("gradient step", fontsize=9, y=0.04)
    fig.supylabel("D4RL-normalised score", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def plot_scores(rows: list[dict], out: Path) -> None:
    """scores.png: last score per dataset, one bar per backbone (mean, std over seeds as error bar, seeds as dots),
    with the behaviour data's score as a black tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r["config"] for r in rows}, key=config_order)
    backbones = backbones_in(rows)
    width = 0.8 / len(backbones)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(configs) + 2), 4))
    for j, b in enumerate(backbones):
        for i, c in enumerate(configs):
            ys = [r["last"] for r in rows if r["config"] == c and r["backbone"] == b]
            if not ys:
                continue
            x = i + (j - (len(backbones) - 1) / 2) * width
            ax.bar(x, np.mean(ys), width, yerr=np.std(ys), color=f"C{j}", label=b, capsize=2)
            ax.plot([x] * len(ys), ys, "k.", ms=3)
    data = data_scores(rows)
    for i, c in enumerate(configs):
        if c in data:
            ax.plot([i - 0.45, i + 0.45], [data[c]] * 2, "k-", lw=1.5, label="behaviour data")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("D4RL-normalised score (last eval)")
    ax.grid(axis="y", alpha=0.3)
    by_label = dict(zip(*reversed(ax.get_legend_handles_labels())))  # one legend entry per label
    ax.legend(by_label.values(), by_label.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every missing cell of the matrix, then write the table")
    r.add_argument("--configs", nargs="+", required=True, help="config names in configs/ (without .yaml)")
    r.add_argument(
        "--backbones",
        nargs="+",
        default=["dt", "transformer", "mingru", "minlstm"],
        help="agents: dt (DT as published, configs/dt.yaml) and/or backbones",
    )
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--steps", type=int, required=True, help="gradient steps per run")
    r.add_argument("--out", required=True)
    r.add_argument("--jobs", type=int, default=1, help="runs in parallel on this machine (pool, or a local Ray)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per run")
    r.add_argument(
        "--engine",
        choices=["auto", "ray", "pool"],
        default="auto",
        help="ray: one Ray task per run; pool: local threads; auto (default): ray when installed, else pool",
    )
    r.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto' or HOST:PORT); default: start a local Ray with --jobs x --cpus-per-run CPUs",
    )
    r.add_argument("--cpus-per-run", type=float, default=None, help="Ray CPUs per run (default: --threads)")
    r.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray GPUs per run; 0.5 puts two runs on a GPU")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    r.add_argument(
        "--recurrent-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for the recurrent backbones only (e.g. acting_mode=recurrent)",
    )
    r.add_argument(
        "--no-check-data",
        dest="check_data",
        action="store_false",
        help="do not compare finished runs' data with today's datasets (skips loading every dataset first)",
    )
    t = sub.add_parser("table", help="rebuild table.md/csv/json and the curves from finished runs")
    t.add_argument("--out", required=True)
    t.add_argument(
        "--no-check-data",
        dest="check_data",
        action="store_false",
        help="tabulate every run, without setting aside those made on other data than today's datasets",
    )
    t.add_argument(
        "--docs",
        metavar="DIR",
        help="also copy the table (as sweep_table.md/.csv) and the plots into DIR, e.g. docs",
    )
    t.add_argument(
        "--splice",
        metavar="FILE",
        action="append",
        default=[],
        help="also replace the block between the lines <!-- NAME --> and <!-- /NAME --> in FILE (e.g. "
        "docs/RESULTS.md) with the table; repeatable",
    )
    t.add_argument(
        "--splice-name",
        metavar="NAME",
        default="sweep-table",
        help="the marker of the block --splice replaces (default: sweep-table; docs/RESULTS.md also has gpu-table)",
    )
    a = ap.parse_args(argv)
    if a.cmd == "run":
        if a.jobs < 1:
            ap.error(f"--jobs must be >= 1, got {a.jobs}")
        if a.engine == "ray" and not ray_available():
            ap.error('--engine ray needs Ray: pip install -e ".[ray]" (or pip install ray), or use --engine pool')
        if a.engine == "pool" and (a.address or a.gpus_per_run or a.cpus_per_run is not None):
            ap.error("--address, --cpus-per-run and --gpus-per-run are Ray options; add --engine ray")
        for c in a.configs:
            if not (ROOT / "configs" / f"{c}.yaml").is_file():
                ap.error(
                    f"no config configs/{c}.yaml; choose from "
                    f"{sorted(p.stem for p in (ROOT / 'configs').glob('*.yaml'))}"
                )
        run_matrix(a)
    else:
        out = Path(a.out)
        if a.check_data:
            cells = existing_cells(out)
            set_aside_stale(out, cells, current_data(sorted({c for c, _, _ in cells}), []))
        write_table(out)
        if a.docs:
            for p in publish(out, Path(a.docs)):
                print(f"wrote {p}")
        for f in a.splice:
            splice(Path(f), (out / "table.md").read_text(), a.splice_name)
            print(f"updated the table in {f}")


def splice(path: Path, table_md: str, name: str = "sweep-table") -> None:
    """Replace what lies between the lines ``<!-- name -->`` and ``<!-- /name -->`` of a Markdown file with
    `table_md`."""
    first, last = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text()
    begin, end = text.find(first), text.find(last)
    if begin < 0 or end < begin:
        sys.exit(f"{path} has no {first} ... {last} block; add the two lines where the table goes")
    head = text[: begin + len(first)]
    path.write_text(head + "\n" + table_md.strip("\n") + "\n" + text[end:])


def publish(out: Path, docs: Path) -> list[Path]:
    """Copy table.md/table.csv (as sweep_table.*), scores.png, curves.png and curves_*.png from OUT into docs."""
    docs.mkdir(parents=True, exist_ok=True)
    pairs = [(out / "table.md", docs / "sweep_table.md"), (out / "table.csv", docs / "sweep_table.csv")]
    pairs += [(p, docs / p.name) for p in [out / "scores.png", out / "curves.png", *sorted(out.glob("curves_*.png"))]]
    written = []
    for src, dst in pairs:
        if src.exists():
            shutil.copyfile(src, dst)
            written.append(dst)
    return written


if __name__ == "__main__":
    main()
