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
    python scripts/sweep.py run ... --recipe cpu-budget --set time_budget_min=20 --set budget_clock=cpu
    python scripts/sweep.py table --out runs/sweep          # table.csv, table.json, table.md, curves_*.png
    python scripts/sweep.py table --out runs/sweep --docs docs --splice docs/RESULTS.md   # ... into the docs too
    python scripts/sweep.py rescore --out runs/sweep --targets data_max   # final weights at the data's best return
    python scripts/sweep.py archive --out runs/sweep --to results/sweep   # the runs' records, without weights
    python scripts/sweep.py table --out results/sweep --no-check-data --to runs/tables   # tabulate an archive

A sweep longer than one sitting can be carried in its records: `archive` copies what `table` reads of each finished
run (results.json, evals.jsonl, dataset.json, config.yaml, rescores' results; no weights) to a small folder worth
keeping; copied back under OUT (`cp -r results/sweep/. runs/sweep/`), those runs count as finished and `run` trains
only the rest, on the same datasets (a rebuilt dataset with other content sets them aside as stale, as for any run).

`--recipe NAME` layers configs/NAME.yaml onto every agent but `dt`, which keeps DT's own recipe (configs/dt.yaml):
with `--recipe cpu-budget` the attention ablation and the recurrent backbones train on the CPU recipe while dt keeps
its learning rate and warm-up, and `--set` still sets the shared budget for all of them.

The table also says how soon each agent gets there (time_to_score.md, curves_time*.png) when the runs recorded the
minutes of update time at each evaluation: on the run's budget_clock, CPU minutes for `cpu`, else wall-clock minutes.

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
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo's packages, installed or not

from envs.scores import normalized_score  # noqa: E402

#: Keys a sweep's --set does not change for the `dt` agent (configs/dt.yaml: DT as Chen et al. ran it): its tokens,
#: acting and optimisation schedule. Budgets, evaluation and the like (--set time_budget_min=...) still apply.
DT_FIXED = (
    "layout", "rtg_embed", "acting_mode", "backbone", "lr", "warmup_steps", "lr_schedule", "min_lr_ratio",
    "decay_fraction",
)  # fmt: skip
#: The files of a finished run that `table` and `rescore --table-only` read: what `archive` keeps (~40 KB a run,
#: no weights). Patterns relative to the run directory.
RECORD_FILES = ("results.json", "evals.jsonl", "dataset.json", "config.yaml", "evals/rescore-*/results.json")
#: Agents in table order: DT first, then attention (the `transformer` backbone on the sweep's own settings), then
#: the recurrent backbones.
AGENTS = ("dt", "transformer", "mingru", "minlstm", "gru", "lstm")


def run_dir(out: Path, config: str, backbone: str, seed: int) -> Path:
    return out / config / backbone / f"seed{seed}"


def recipe_path(name: str) -> Path:
    """The config file a --recipe means: a path ending .yaml as given (made absolute), else configs/NAME.yaml."""
    return Path(name).resolve() if name.endswith(".yaml") else ROOT / "configs" / f"{name}.yaml"


def train_command(
    out: Path,
    config: str,
    backbone: str,
    seed: int,
    steps: int,
    threads: int,
    overrides: list[str],
    recurrent_overrides: list[str] = (),
    recipes: list[str] = (),
) -> list[str]:
    """The `run_rl.py train` command for one cell: --resume when a checkpoint is there; --overwrite when an earlier
    sweep was killed before the cell's first checkpoint (its directory then holds nothing to continue from).

    ``recipes`` (see :func:`recipe_path`) go right after the dataset's config, for every agent but dt."""
    rd = run_dir(out, config, backbone, seed)
    agent = ["--config", "dt"] if backbone == "dt" else []  # DT's recipe first; the dataset's config on top
    recipe = [] if backbone == "dt" else [a for name in recipes for a in ("--config", str(recipe_path(name)))]
    cmd = [
        sys.executable,
        str(ROOT / "run_rl.py"),
        "train",
        *agent,
        "--config",
        str(ROOT / "configs" / f"{config}.yaml"),
        *recipe,
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
            continue  # dt means DT's token layout, acting and schedule, whatever the other agents use
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
    out: Path,
    cell: tuple[str, str, int],
    steps: int,
    threads: int,
    overrides: list[str],
    recurrent: list[str],
    recipes: list[str] = (),
) -> tuple[tuple[str, str, int], int, float]:
    """Train one cell to completion (or failure) as a `run_rl.py train` subprocess, appending to its .log next to
    the run directory; (cell, exit code, seconds). The command, and so --resume, is decided here, when it starts."""
    rd = run_dir(out, *cell)
    rd.parent.mkdir(parents=True, exist_ok=True)
    cmd = train_command(out, *cell, steps, threads, overrides, recurrent, recipes)
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
        jobs = [
            pool.submit(run_cell, out, c, args.steps, args.threads, args.set, args.recurrent_set, args.recipe)
            for c in todo
        ]
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
        pending = {
            task.remote(out, c, args.steps, args.threads, args.set, args.recurrent_set, args.recipe): c for c in todo
        }
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
    """One row per finished run: config, backbone, seed, last, best and last-three-mean scores (and the last per
    target), wall time, its budget, and its eval curve against step and (when its evaluations recorded update
    minutes) against minutes on its clock."""
    rows = []
    for res_path in sorted(out.glob("*/*/seed*/results.json")):
        rd = res_path.parent
        res = json.loads(res_path.read_text())
        evals = (
            [json.loads(line) for line in (rd / "evals.jsonl").read_text().splitlines() if line.strip()]
            if (rd / "evals.jsonl").exists()
            else res.get("history", [])
        )
        scores = [e["score"] for e in evals]
        data = json.loads((rd / "dataset.json").read_text()) if (rd / "dataset.json").exists() else {}
        cfg = (yaml.safe_load((rd / "config.yaml").read_text()) or {}) if (rd / "config.yaml").exists() else {}
        time_curve, clock = _time_curve(evals, cfg.get("budget_clock", "wall"))
        rows.append(
            {
                "config": rd.parent.parent.name,
                "backbone": rd.parent.name,
                "seed": int(rd.name[4:]),
                "last": res["normalized_score_mean"],
                "best": max(scores) if scores else res["normalized_score_mean"],
                "last3": res.get("mean_last3", float(np.mean(scores[-3:])) if scores else res["normalized_score_mean"]),
                "last_per_target": res.get("last_per_target", {}),
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
                "time_budget_min": cfg.get("time_budget_min") or 0,
                "budget": _budget_text(cfg, res["steps"]),
                "clock": clock,
                "curve": [(e["step"], e["score"]) for e in evals],
                "time_curve": time_curve,
            }
        )
    return rows


def _time_curve(evals: list[dict], budget_clock: str) -> tuple[list[tuple[float, float]], str]:
    """(minutes, score) per evaluation and the clock they are on: CPU minutes (`cpu_min`) when the run's budget
    ran on the CPU clock and every evaluation has them, else wall-clock minutes (`train_min`); [] for a run whose
    evaluations recorded no minutes (made before they were)."""
    if budget_clock == "cpu" and evals and all("cpu_min" in e for e in evals):
        return [(e["cpu_min"], e["score"]) for e in evals], "cpu"
    if evals and all("train_min" in e for e in evals):
        return [(e["train_min"], e["score"]) for e in evals], "wall"
    return [], "wall"


def _budget_text(cfg: dict, steps: int) -> str:
    """What stopped the run's training, in words: its step count, and its time budget when it had one."""
    minutes = cfg.get("time_budget_min") or 0
    if not minutes:
        return f"{cfg.get('steps', steps)} steps"
    return f"{minutes:g} min on the {cfg.get('budget_clock', 'wall')} clock (at most {cfg.get('steps', steps)} steps)"


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


def compare_to(
    rows: list[dict], base: str, data: dict[str, float] | None = None, n_boot: int = 2000, seed: int = 0
) -> list[str]:
    """Markdown lines: each backbone's last score minus `base`'s, averaged over the datasets both have runs on; with
    ``data`` (config -> the behaviour data's score), also on how many of its datasets each agent's mean last score
    is at or above the data's.

    The 95 % interval is a stratified bootstrap (as rliable does): within each dataset, each backbone's seeds are
    resampled with replacement, the per-dataset means recomputed, and the difference averaged over datasets again.
    It says how much the average could move with other seeds on these datasets, not how it would move on others.
    Computed only where every dataset has ≥2 seeds on both sides (with one seed there is nothing to resample).
    """
    rng = np.random.default_rng(seed)
    by = {}
    for r in rows:
        by.setdefault((r["config"], r["backbone"]), []).append(r["last"])

    def at_data(b: str) -> str:
        scored = [c for c, bb in by if bb == b and c in (data or {})]
        return f"{sum(np.mean(by[(c, b)]) >= data[c] for c in scored)} of {len(scored)}" if scored else "–"

    out, compared = [], 0
    for b in backbones_in(rows):
        if b == base:
            if data:
                out.append(f"| {b} | – | – | – | {at_data(b)} |")
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
        out.append(
            f"| {b} | {np.mean(diffs):+.1f} | {ci} | {ahead} of {len(common)} |" + (f" {at_data(b)} |" if data else "")
        )
        compared += 1
    if not compared:
        return []
    head = f"| backbone | last score − {base}, mean over datasets | 95 % bootstrap interval | datasets ahead |"
    return [
        head + (" datasets at or above the data |" if data else ""),
        "|---|---|---|---|" + ("---|" if data else ""),
    ] + out


def average_groups(
    configs: list[str], backbones: list[str], has: set[tuple[str, str]]
) -> list[tuple[str, list[str], list[str]]]:
    """What an average row covers, as (label suffix, datasets, agents): the datasets every agent has (so the agents
    are compared on the same sets); then, when an agent (an ablation column) has runs on only some, every dataset for
    the agents that have them all. ``has``: the (config, backbone) pairs with runs."""
    complete = [b for b in backbones if all((c, b) in has for c in configs)]
    groups = [("", [c for c in configs if all((c, b) in has for b in backbones)], backbones)]
    if complete and len(complete) < len(backbones):
        groups.append((", agents with every dataset", configs, complete))
    return [g for g in groups if g[1]]


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


def first_reach(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """The time of the first evaluation whose score is >= ``threshold``; None when none is.

    >>> first_reach([(1.0, 10.0), (2.0, 30.0), (3.0, 20.0)], 25.0), first_reach([(1.0, 10.0)], 25.0)
    (2.0, None)
    """
    return next((t for t, score in curve if score >= threshold), None)


def _reach(curves: list[list[tuple[float, float]]], threshold: float | None) -> dict | None:
    """How soon a set of seeds reach ``threshold``: each seed's first time (None: never), the mean over the seeds
    that reach it (None if none does), how many do, out of how many; None without a threshold or seeds."""
    if threshold is None or not curves:
        return None
    times = [first_reach(cv, threshold) for cv in curves]
    reached = [t for t in times if t is not None]
    return {
        "minutes": float(np.mean(reached)) if reached else None,
        "reached": len(reached),
        "seeds": len(times),
        "per_seed": times,
    }


def time_to_score(rows: list[dict]) -> dict | None:
    """Minutes of update time each agent takes to reach the behaviour data's score and dt's final score, from the
    runs with minutes in their history; None when no run has them.

    Per dataset and agent, each seed's time is that of its first evaluation at or above the threshold; a seed that
    never gets there counts as not reached, and the minutes are the mean over the seeds that did. dt's final score is
    its last score averaged over its seeds. Per agent then: each threshold's minutes averaged over the datasets where
    some seed reached it, and the ratio of its minutes to dt's final to dt's own, averaged over the datasets where
    both are defined (below 1: sooner than dt).
    """
    timed = [r for r in rows if r.get("time_curve")]
    if not timed:
        return None
    configs = sorted({r["config"] for r in timed}, key=config_order)
    agents = backbones_in(timed)
    data = data_scores(rows)
    datasets = {}
    for c in configs:
        dt_last = [r["last"] for r in rows if r["config"] == c and r["backbone"] == "dt"]
        dt_final = float(np.mean(dt_last)) if dt_last else None
        per_agent = {}
        for b in agents:
            curves = [r["time_curve"] for r in timed if r["config"] == c and r["backbone"] == b]
            if curves:
                per_agent[b] = {"to_data": _reach(curves, data.get(c)), "to_dt_final": _reach(curves, dt_final)}
        datasets[c] = {"data": data.get(c), "dt_final": dt_final, "agents": per_agent}
    average = {}
    for b in agents:
        average[b] = {}
        for key in ("to_data", "to_dt_final"):
            cells = [d["agents"][b][key] for d in datasets.values() if b in d["agents"] and d["agents"][b][key]]
            got = [cell["minutes"] for cell in cells if cell["minutes"] is not None]
            average[b][key] = {"minutes": float(np.mean(got)) if got else None, "datasets": len(got), "of": len(cells)}
        ratios = []
        for d in datasets.values():
            mine, dts = (d["agents"].get(a, {}).get("to_dt_final") for a in (b, "dt"))
            if mine and dts and mine["minutes"] is not None and dts["minutes"]:
                ratios.append(mine["minutes"] / dts["minutes"])
        average[b]["ratio_to_dt"] = {"ratio": float(np.mean(ratios)) if ratios else None, "datasets": len(ratios)}
    clocks = {clock: sum(r["clock"] == clock for r in timed) for clock in ("cpu", "wall")}
    return {"clock": {k: n for k, n in clocks.items() if n}, "datasets": datasets, "average": average}


def _clock_text(clocks: dict[str, int]) -> str:
    """The clock of the minutes, in words, for captions and axis labels."""
    if set(clocks) == {"cpu"}:
        return "CPU minutes of update time (the process's CPU time in update steps; budget_clock cpu)"
    if set(clocks) == {"wall"}:
        return "wall-clock minutes of update time (budget_clock wall, or runs made before the CPU clock)"
    return (
        f"minutes of update time, each run on its own clock ({clocks['cpu']} runs CPU, {clocks['wall']} runs wall "
        "clock): the two do not compare"
    )


def _reach_text(cell: dict | None) -> str:
    if cell is None:
        return "–"
    minutes = "–" if cell["minutes"] is None else f"{cell['minutes']:.1f}"
    return f"{minutes} ({cell['reached']}/{cell['seeds']})"


def time_to_score_md(tts: dict) -> str:
    """time_to_score.md: per dataset, each agent's minutes to the data's score and to dt's final score; then per
    agent the averages over datasets and the ratio to dt's time."""
    agents = list(tts["average"])
    lines = [
        "| dataset | data | dt final | " + " | ".join(f"{b} → data | {b} → dt final" for b in agents) + " |",
        "|---|---|---|" + "---|---|" * len(agents),
    ]
    for c, d in tts["datasets"].items():
        cells = [_reach_text(d["agents"].get(b, {}).get(key)) for b in agents for key in ("to_data", "to_dt_final")]
        thresholds = ["–" if d[k] is None else f"{d[k]:.1f}" for k in ("data", "dt_final")]
        lines.append(f"| {c} | " + " | ".join(thresholds + cells) + " |")
    lines += [
        "",
        "| agent | → data, mean over datasets | → dt final, mean over datasets | → dt final, ÷ dt's minutes, mean |",
        "|---|---|---|---|",
    ]
    for b, avg in tts["average"].items():
        cells = []
        for key in ("to_data", "to_dt_final"):
            a = avg[key]
            cells.append("–" if a["minutes"] is None else f"{a['minutes']:.1f} ({a['datasets']} of {a['of']})")
        r = avg["ratio_to_dt"]
        cells.append("–" if r["ratio"] is None else f"{r['ratio']:.2f} ({r['datasets']})")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Minutes: {_clock_text(tts['clock'])}. Each cell: mean over the seeds that reach the score of their first "
        "evaluation at or above it, then (seeds that reach it / seeds); – where none does or there is no such "
        "score. data: the behaviour data's D4RL-normalised score; dt final: dt's last score, mean over its seeds. "
        "Averages: over the datasets where some seed got there (of the datasets with runs and a score to reach); "
        "the ratio: the agent's minutes to dt's final over dt's own, averaged over the datasets where both got "
        "there (in brackets), below 1 meaning sooner than dt. Runs whose evaluations recorded no minutes are left "
        "out.",
    ]
    return "\n".join(lines) + "\n"


def write_table(out: Path, to: Path | None = None) -> str:
    """Write table.csv (per run), table.json ({"runs": per run, "time_to_score": see :func:`time_to_score`}) and
    table.md (mean ± std over seeds of the last evaluation, the primary score; the best; the mean of the last three;
    then the last score at each evaluation target); time_to_score.md when the runs recorded update minutes. All of
    it, the plots too, goes into ``to`` (default: ``out``), so an archive of records can be tabulated unchanged."""
    rows = read_runs(out)
    if not rows:
        print("no finished runs yet")
        return ""
    dest = to or out
    dest.mkdir(parents=True, exist_ok=True)
    flat = [{k: v for k, v in r.items() if k not in ("curve", "time_curve", "last_per_target")} for r in rows]
    targets = sorted({t for r in rows for t in r["last_per_target"]}, key=float, reverse=True)
    for r, f in zip(rows, flat, strict=True):
        f.update({f"last@{t}": r["last_per_target"].get(t) for t in targets})
    with open(dest / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    tts = time_to_score(rows)
    (dest / "table.json").write_text(json.dumps({"runs": rows, "time_to_score": tts}, indent=1))

    configs = sorted({r["config"] for r in rows}, key=config_order)
    backbones = backbones_in(rows)
    pick = {(r["config"], r["backbone"]): [] for r in rows}
    for r in rows:
        pick[(r["config"], r["backbone"])].append(r)
    data = data_scores(rows)
    lines = [
        "| dataset | data | " + " | ".join(f"{b} last | {b} best | {b} last 3" for b in backbones) + " |",
        "|---|---|" + "---|---|---|" * len(backbones),
    ]
    means = {}  # (config, backbone) -> (mean last, mean best, mean of the last three)
    for c in configs:
        cells = []
        for b in backbones:
            rs = pick.get((c, b), [])
            cells += [_mean_std([r["last"] for r in rs]) + f" (n={len(rs)})", _mean_std([r["best"] for r in rs]),
                      _mean_std([r["last3"] for r in rs])]  # fmt: skip
            if rs:
                means[(c, b)] = tuple(np.mean([r[k] for r in rs]) for k in ("last", "best", "last3"))
        d = f"{data[c]:.1f}" if c in data else "–"
        lines.append(f"| {c} | {d} | " + " | ".join(cells) + " |")
    paper9 = [c for c in configs if c.partition("-")[2] in PAPER_LEVELS]
    groups = [("average", configs)]
    if paper9 and len(paper9) < len(configs):
        groups.append(("average, medium / medium-replay / medium-expert", paper9))
    for name, group in groups:
        for suffix, common, agents in average_groups(group, backbones, set(means)):
            label = name + suffix
            d = f"{np.mean([data[c] for c in common]):.1f}" if all(c in data for c in common) else "–"
            cells = [
                f"{np.mean([means[(c, b)][i] for c in common]):.1f}" if b in agents else "–"
                for b in backbones
                for i in (0, 1, 2)
            ]
            lines.append(f"| **{label}** ({len(common)} datasets) | {d} | " + " | ".join(cells) + " |")
    steps = sorted({r["steps"] for r in rows})
    batches = sorted({str(r["batch_size"]) for r in rows if r.get("batch_size")}) or ["unrecorded"]
    machines = sorted({r.get("machine", "unrecorded") for r in rows})
    wall = {}
    for b in backbones:
        w = [r["wall_time_s"] / 60 for r in rows if r["backbone"] == b]
        wall[b] = f"{np.median(w):.1f} min ({min(w):.1f}–{max(w):.1f})"
    budgets = sorted({r["budget"] for r in rows})
    comparison = compare_to(rows, "dt" if any(r["backbone"] == "dt" for r in rows) else "transformer", data)
    if comparison and len(budgets) > 1:
        comparison.append(f"\nNot at equal budget: the runs had different budgets: {'; '.join(budgets)}.")
    lines += (
        [""]
        + comparison
        + [
            "",
            (f"Budget per run: {'; '.join(budgets)}. " if any(r["time_budget_min"] for r in rows) else "")
            + f"Steps per run: {', '.join(map(str, steps))}; batch {', '.join(batches)}. Wall time per run, median "
            "(min–max): "
            + ", ".join(f"{b} {wall[b]}" for b in backbones)
            + f". Machine: {'; '.join(machines)}. Scores: D4RL-normalised, "
            "mean ± std over seeds of each run's last evaluation (the primary score), its best, and the mean of its "
            "last three; data: the behaviour data's mean episode return, normalised. Averages cover the datasets "
            'that every backbone has runs on; an "agents with every dataset" row covers all of them, for the agents '
            "that have runs on each.",
        ]
    )
    lines += per_target_md(rows, configs, backbones, data)
    md = "\n".join(lines) + "\n"
    (dest / "table.md").write_text(md)
    plot_curves(rows, dest)
    plot_scores(rows, dest)
    print(md)
    if tts:
        tmd = time_to_score_md(tts)
        (dest / "time_to_score.md").write_text(tmd)
        plot_time_curves([r for r in rows if r["time_curve"]], dest, _clock_text(tts["clock"]).split(" (")[0])
        print(tmd)
    return md


def per_target_md(rows: list[dict], configs: list[str], backbones: list[str], data: dict[str, float]) -> list[str]:
    """Markdown lines: the last score at each evaluation target (DT evaluates two per env, e.g. hopper 3600 and
    1800), mean ± std over seeds; none when the runs recorded no per-target scores. The main table's score is the
    first target's."""
    targets = {c: {t for r in rows if r["config"] == c for t in r["last_per_target"]} for c in configs}
    per = [(c, t) for c in configs for t in sorted(targets[c], key=float, reverse=True)]
    if not per:
        return []
    lines = ["", "Last score at each target:", "", "| dataset | target | data | " + " | ".join(backbones) + " |",
             "|---|---|---|" + "---|" * len(backbones)]  # fmt: skip
    for c, t in per:
        cells = []
        for b in backbones:
            xs = [r["last_per_target"][t] for r in rows if (r["config"], r["backbone"]) == (c, b)
                  and t in r["last_per_target"]]  # fmt: skip
            cells.append(_mean_std(xs) + f" (n={len(xs)})" if xs else "–")
        d = f"{data[c]:.1f}" if c in data else "–"
        lines.append(f"| {c} | {float(t):g} | {d} | " + " | ".join(cells) + " |")
    return lines


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


def _draw_time_curves(ax, rows: list[dict], config: str, data: float | None) -> None:
    """Score against minutes: each seed thin, their mean thick (on the minutes every seed covers, each seed's curve
    interpolated linearly between its evaluations), one colour per agent across datasets."""
    from matplotlib.ticker import MaxNLocator

    for i, b in enumerate(backbones_in(rows)):
        curves = [np.asarray(r["time_curve"], float) for r in rows if r["config"] == config and r["backbone"] == b]
        curves = [cv for cv in curves if len(cv)]
        if not curves:
            continue
        for cv in curves:
            ax.plot(cv[:, 0], cv[:, 1], color=f"C{i}", lw=0.7, alpha=0.35)
        lo, hi = max(cv[0, 0] for cv in curves), min(cv[-1, 0] for cv in curves)
        grid = np.linspace(lo, hi, 100) if hi >= lo else np.array([])
        mean = np.mean([np.interp(grid, cv[:, 0], cv[:, 1]) for cv in curves], 0)
        ax.plot(grid, mean, color=f"C{i}", lw=2, marker="o" if len(grid) and hi == lo else None,
                label=f"{b} (n={len(curves)})")  # fmt: skip
    if data is not None:
        ax.axhline(data, color="k", lw=1, ls="--", label="behaviour data")
    ax.set_title(config, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.grid(alpha=0.3)


def plot_time_curves(rows: list[dict], out: Path, minutes: str) -> None:
    """curves_time_<config>.png and the grid curves_time.png: as :func:`plot_curves`, against ``minutes`` (the
    axis label: which clock) instead of steps; ``rows``: the runs with minutes in their history."""
    plot_curves(rows, out, _draw_time_curves, minutes, "curves_time")


def plot_curves(
    rows: list[dict], out: Path, draw=_draw_curves, xlabel: str = "gradient step", name: str = "curves"
) -> None:
    """curves_<config>.png: normalised score against step, mean ± std over seeds, one line per backbone, the
    behaviour data's score dashed; curves.png: all datasets on one grid (a row per environment). ``draw``, ``xlabel``
    and ``name`` draw one panel, label its x axis and name the files (<name>_<config>.png, <name>.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r["config"] for r in rows}, key=config_order)
    data = data_scores(rows)
    for c in configs:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        draw(ax, rows, c, data.get(c))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("D4RL-normalised score")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{name}_{c}.png", dpi=110)
        plt.close(fig)
    envs = sorted({config_order(c)[0] for c in configs})
    per_env = [[c for c in configs if config_order(c)[0] == e] for e in envs]
    if all(len(cs) == 1 for cs in per_env):  # one dataset per environment: a single row reads better
        per_env = [[cs[0] for cs in per_env]]
    ncol = max(len(cs) for cs in per_env)
    fig, axes = plt.subplots(len(per_env), ncol, figsize=(max(3.2 * ncol, 6.4), 2.6 * len(per_env) + 0.6),
                             squeeze=False)  # fmt: skip
    for i, cs in enumerate(per_env):
        for j in range(ncol):
            ax = axes[i][j]
            if j >= len(cs):
                ax.axis("off")
                continue
            draw(ax, rows, cs[j], data.get(cs[j]))
            ax.tick_params(labelsize=7)
    legend = {}  # one entry per agent (and the data), from whichever panels have it
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label.split(" (")[0], handle)
    names = sorted(legend, key=lambda k: AGENTS.index(k) if k in AGENTS else len(AGENTS))
    fig.legend([legend[k] for k in names], names, loc="lower center", ncol=len(names), fontsize=8)
    fig.supxlabel(xlabel, fontsize=9, y=0.09 if len(per_env) == 1 else 0.04)
    fig.supylabel("D4RL-normalised score", fontsize=9)
    fig.tight_layout(rect=(0, 0.12 if len(per_env) == 1 else 0.05, 1, 1))
    fig.savefig(out / f"{name}.png", dpi=100)
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
        "--recipe",
        action="append",
        default=[],
        metavar="NAME",
        help="config (configs/NAME.yaml, or a path ending .yaml) on top of the dataset's, for every agent but dt, "
        "which keeps configs/dt.yaml (e.g. cpu-budget); repeatable; --set still applies to all",
    )
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
        "--to",
        metavar="DIR",
        help="write the tables and plots into DIR instead of OUT (e.g. when OUT is an archive of records)",
    )
    t.add_argument(
        "--no-check-data",
        dest="check_data",
        action="store_false",
        help="tabulate every run, without setting aside those made on other data than today's datasets",
    )
    t.add_argument(
        "--docs",
        metavar="DIR",
        help="also copy the table (as sweep_table.md/.csv), time_to_score.md (as sweep_time_to_score.md) and the "
        "plots into DIR, e.g. docs",
    )
    t.add_argument(
        "--splice",
        metavar="FILE",
        action="append",
        default=[],
        help="also replace the block between the lines <!-- NAME --> and <!-- /NAME --> in FILE (e.g. "
        "docs/RESULTS.md) with the table, and the block <!-- NAME-time --> ... <!-- /NAME-time --> (if FILE has "
        "one) with time_to_score.md; repeatable",
    )
    t.add_argument(
        "--splice-name",
        metavar="NAME",
        default="sweep-table",
        help="the marker of the block --splice replaces (default: sweep-table; docs/RESULTS.md also has gpu-table)",
    )
    q = sub.add_parser("rescore", help="evaluate every finished run's final weights again at other targets")
    q.add_argument("--out", required=True)
    q.add_argument("--targets", nargs="+", required=True,
                   help="numbers and/or data_max (each run's training data's best episode return)")  # fmt: skip
    q.add_argument("--name", help="the rescore's name (RUN/evals/rescore-NAME, OUT/rescore-NAME.md); default: "
                   "the targets joined by _")  # fmt: skip
    q.add_argument("--episodes", type=int, help="episodes per target (default: each run's final_eval_episodes)")
    q.add_argument("--configs", nargs="+", help="only these datasets' runs")
    q.add_argument("--backbones", nargs="+", help="only these agents' runs")
    q.add_argument("--table-only", action="store_true",
                   help="evaluate nothing: rebuild the table from the rescores already there")  # fmt: skip
    q.add_argument("--splice", metavar="FILE", action="append", default=[],
                   help="also replace the block <!-- rescore-NAME --> ... <!-- /rescore-NAME --> in FILE")  # fmt: skip
    v = sub.add_parser("archive", help="copy each finished run's records (no weights) to another folder")
    v.add_argument("--out", required=True)
    v.add_argument("--to", required=True, help="the folder to copy into, laid out as OUT")
    a = ap.parse_args(argv)
    if a.cmd == "archive":
        runs = archive_runs(Path(a.out), Path(a.to))
        print(f"archived {len(runs)} runs' records to {a.to}")
        return
    if a.cmd == "rescore":
        name = a.name or "_".join(a.targets)
        if not a.table_only:
            rescore_runs(Path(a.out), a.targets, name, a.episodes, a.configs, a.backbones)
        md = rescore_table(Path(a.out), name)
        for f in a.splice:
            splice(Path(f), md, f"rescore-{name}")
            print(f"updated the rescore table in {f}")
        return
    if a.cmd == "run":
        if a.jobs < 1:
            ap.error(f"--jobs must be >= 1, got {a.jobs}")
        if a.engine == "ray" and not ray_available():
            ap.error('--engine ray needs Ray: pip install -e ".[ray]" (or pip install ray), or use --engine pool')
        if a.engine == "pool" and (a.address or a.gpus_per_run or a.cpus_per_run is not None):
            ap.error("--address, --cpus-per-run and --gpus-per-run are Ray options; add --engine ray")
        for name in a.recipe:
            if not recipe_path(name).is_file():
                ap.error(f"no recipe {recipe_path(name)} (--recipe takes a configs/ name or a path ending .yaml)")
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
        tables = Path(a.to) if a.to else out
        write_table(out, tables)
        if a.docs:
            for p in publish(tables, Path(a.docs)):
                print(f"wrote {p}")
        for f in a.splice:
            splice(Path(f), (tables / "table.md").read_text(), a.splice_name)
            print(f"updated the table in {f}")
            if (tables / "time_to_score.md").exists():
                if splice(Path(f), (tables / "time_to_score.md").read_text(), f"{a.splice_name}-time", missing_ok=True):
                    print(f"updated the time-to-score table in {f}")


def archive_runs(out: Path, to: Path) -> list[Path]:
    """Copy RECORD_FILES of every finished run under ``out`` to the same place under ``to``; the run folders
    written. All or nothing: if any record already in ``to`` differs from the run's, exit listing every such file
    before copying anything (nothing is overwritten)."""
    copies, conflicts, runs = [], [], []
    for res in sorted(out.glob("*/*/seed*/results.json")):
        rd = res.parent
        dest = to / rd.relative_to(out)
        runs.append(dest)
        for src in sorted(p for pattern in RECORD_FILES for p in rd.glob(pattern) if p.is_file()):
            dst = dest / src.relative_to(rd)
            if not dst.exists():
                copies.append((src, dst))
            elif dst.read_bytes() != src.read_bytes():
                conflicts.append(dst)
    if conflicts:
        listed = "\n  ".join(str(c) for c in conflicts)
        raise SystemExit(
            f"{len(conflicts)} record(s) in {to} exist and differ from the runs' (nothing was copied):\n  {listed}\n"
            "archive into an empty folder, or move those runs' records aside first"
        )
    for src, dst in copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return runs


def rescore_runs(
    out: Path,
    targets: list[str],
    name: str,
    episodes: int | None = None,
    configs: list[str] | None = None,
    backbones: list[str] | None = None,
) -> list[Path]:
    """Evaluate every finished run's final weights again at ``targets`` (numbers and/or data_max) with `run_rl.py
    eval`: the run's reset seeds and, unless ``episodes`` is given, its final episode count, into
    RUN/evals/rescore-NAME/. Training is not touched; a run already rescored under NAME is kept. Returns the runs
    evaluated now."""
    done = []
    for res in sorted(out.glob("*/*/seed*/results.json")):
        rd = res.parent
        if (configs and rd.parent.parent.name not in configs) or (backbones and rd.parent.name not in backbones):
            continue
        dest = rd / "evals" / f"rescore-{name}"
        if (dest / "results.json").exists():
            continue
        cmd = [sys.executable, str(ROOT / "run_rl.py"), "eval", "--checkpoint", str(rd), "--targets", *targets,
               "--out", str(dest), "--overwrite", *(["--episodes", str(episodes)] if episodes else [])]  # fmt: skip
        t0 = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"rescored {rd} ({time.time() - t0:.0f} s)", flush=True)
        done.append(rd)
    return done


def rescore_table(out: Path, name: str) -> str:
    """Write OUT/rescore-NAME.md and .json and return the Markdown: per dataset and agent, the last score at the
    run's first target and at the rescore's first target (mean ± std over seeds), the targets, the data's score;
    then averages over the datasets where every agent was rescored, and on how many datasets each agent's mean is at
    or above the data's at either target. Only runs rescored under NAME count, on both sides of the arrow."""
    rows, rescored = read_runs(out), {}
    for r in rows:
        res = out / r["config"] / r["backbone"] / f"seed{r['seed']}" / "evals" / f"rescore-{name}" / "results.json"
        if res.exists():
            rescored[(r["config"], r["backbone"], r["seed"])] = json.loads(res.read_text())
    rows = [r for r in rows if (r["config"], r["backbone"], r["seed"]) in rescored]
    if not rows:
        sys.exit(f"no run in {out} has been rescored under {name!r}: run `sweep.py rescore --out {out} --targets ...`")
    configs = sorted({r["config"] for r in rows}, key=config_order)
    backbones = backbones_in(rows)
    data = data_scores(rows)
    cells: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    targets: dict[str, tuple[str, str]] = {}  # config -> (the run's first target, the rescore's), as results.json keys
    per_run = []
    for r in rows:
        new = rescored[(r["config"], r["backbone"], r["seed"])]
        before, after = cells.setdefault((r["config"], r["backbone"]), ([], []))
        before.append(r["last"])
        after.append(new["normalized_score_mean"])
        targets.setdefault(r["config"], (next(iter(r["last_per_target"]), "?"), next(iter(new["per_target"]))))
        per_run.append({"config": r["config"], "backbone": r["backbone"], "seed": r["seed"], "last": r["last"],
                        "rescored": new["normalized_score_mean"],
                        "per_target": {t: x["normalized_mean"] for t, x in new["per_target"].items()}})  # fmt: skip
    lines = [f"| dataset | data | target: run's → rescore's ({name}) | " + " | ".join(backbones) + " |",
             "|---|---|---|" + "---|" * len(backbones)]  # fmt: skip
    for c in configs:
        row = []
        for b in backbones:
            if (c, b) not in cells:
                row.append("–")
                continue
            before, after = cells[(c, b)]
            row.append(f"{_mean_std(before)} → {_mean_std(after)} (n={len(after)})")
        d = f"{data[c]:.1f}" if c in data else "–"
        lines.append(f"| {c} | {d} | {targets[c][0]} → {targets[c][1]} | " + " | ".join(row) + " |")
    summary: list[dict] = []  # one entry per average row: its datasets and, per agent, before/after
    for label, common, agents in average_groups(configs, backbones, set(cells)):
        avg, at_data = [], []
        group = {"datasets": common, "agents": {}}
        summary.append(group)
        for b in backbones:
            if b not in agents:
                avg.append("–")
                at_data.append("–")
                continue
            before, after = (np.mean([np.mean(cells[(c, b)][i]) for c in common]) for i in (0, 1))
            scored = [c for c in common if c in data]
            hits = [int(sum(np.mean(cells[(c, b)][i]) >= data[c] for c in scored)) for i in (0, 1)]
            avg.append(f"{before:.1f} → {after:.1f}")
            at_data.append(f"{hits[0]} → {hits[1]} of {len(scored)}" if scored else "–")
            group["agents"][b] = {"average": [float(before), float(after)], "at_or_above_data": hits,
                                  "datasets_scored": len(scored)}  # fmt: skip
        d = f"{np.mean([data[c] for c in common]):.1f}" if all(c in data for c in common) else "–"
        lines.append(f"| **average{label}** ({len(common)} datasets) | {d} | | " + " | ".join(avg) + " |")
        lines.append(f"| **datasets at or above the data{label}** | | | " + " | ".join(at_data) + " |")
    lines += [
        "",
        "Each cell: the last score at the run's first target → the same final weights evaluated at the rescore's "
        "first target (`sweep.py rescore`: `run_rl.py eval`, the run's reset seeds and final episode count), "
        "D4RL-normalised, mean ± std over seeds. Training is the same on both sides of the arrow.",
    ]
    md = "\n".join(lines) + "\n"
    (out / f"rescore-{name}.md").write_text(md)
    (out / f"rescore-{name}.json").write_text(json.dumps({"targets": targets, "summary": summary, "runs": per_run}))
    print(md)
    return md


def splice(path: Path, table_md: str, name: str = "sweep-table", missing_ok: bool = False) -> bool:
    """Replace what lies between the lines ``<!-- name -->`` and ``<!-- /name -->`` of a Markdown file with
    `table_md`; whether it did (without the block: False with ``missing_ok``, else exit naming the markers)."""
    first, last = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text()
    begin, end = text.find(first), text.find(last)
    if begin < 0 or end < begin:
        if missing_ok:
            return False
        sys.exit(f"{path} has no {first} ... {last} block; add the two lines where the table goes")
    head = text[: begin + len(first)]
    path.write_text(head + "\n" + table_md.strip("\n") + "\n" + text[end:])
    return True


def publish(out: Path, docs: Path) -> list[Path]:
    """Copy table.md/table.csv (as sweep_table.*), time_to_score.md (as sweep_time_to_score.md), scores.png,
    curves.png and curves_*.png (curves_time.png and curves_time_*.png among them) from OUT into docs."""
    docs.mkdir(parents=True, exist_ok=True)
    pairs = [(out / "table.md", docs / "sweep_table.md"), (out / "table.csv", docs / "sweep_table.csv")]
    pairs.append((out / "time_to_score.md", docs / "sweep_time_to_score.md"))
    pairs += [(p, docs / p.name) for p in [out / "scores.png", out / "curves.png", *sorted(out.glob("curves_*.png"))]]
    written = []
    for src, dst in pairs:
        if src.exists():
            shutil.copyfile(src, dst)
            written.append(dst)
    return written


if __name__ == "__main__":
    main()
