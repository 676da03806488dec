"""Train an experiment's matrix with `run_rl.py train` subprocesses, resumably, on Ray or a local pool.

Resumable: a run whose results.json exists is skipped, a run with a checkpoint but no results is resumed, a run
killed before its first checkpoint starts again. A run made on other data than its dataset's config names today (a
dataset rebuilt under the same id, compared by content fingerprint) is stale: it is moved aside to
OUT/<dataset>/<agent>/stale/ (never deleted) and run again.

Engines: each run is a `run_rl.py train` subprocess with ``threads`` torch threads.
- ``ray`` (the default when Ray is installed, `pip install -e ".[ray]"`): each run is a Ray task holding
  ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs; without an ``address`` a local Ray starts with jobs x cpus_per_run
  CPUs. On a cluster every node needs this checkout and OUT at the same paths. The resume decision is made when the
  task starts, on its node, so a task Ray retries after a lost node continues from its last checkpoint.
- ``pool``: ``jobs`` local threads, each waiting on one subprocess; the fallback without Ray.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from sweep.experiment import ROOT, Agent, Experiment, config_path

Cell = tuple[str, str, int]  # (dataset, agent, seed)


def run_dir(out: Path, dataset: str, agent: str, seed: int) -> Path:
    """Where one run of the matrix lives: ``out/<dataset>/<agent>/seed<k>``."""
    return Path(out) / dataset / agent / f"seed{seed}"


def train_command(exp: Experiment, agent: Agent, dataset: str, seed: int) -> list[str]:
    """The `run_rl.py train` command of one run: --resume when a checkpoint is there; --overwrite when an earlier
    sweep was killed before the run's first checkpoint (its folder then holds nothing to continue from)."""
    rd = run_dir(exp.out, dataset, agent.name, seed)
    configs = [*agent.base, dataset, *agent.configs]
    cmd = [sys.executable, str(ROOT / "run_rl.py"), "train"]
    cmd += [a for c in configs for a in ("--config", str(config_path(c)))]
    cmd += ["--backbone", agent.backbone, "--seed", str(seed), "--steps", str(exp.steps), "--out", str(rd)]
    for o in (f"threads={exp.threads}", "progress=false", *exp.set, *agent.set):
        cmd += ["--set", o]
    if (rd / "checkpoints" / "latest").is_file():
        cmd.append("--resume")
    elif rd.is_dir() and not (rd / "results.json").exists():
        cmd.append("--overwrite")
    return cmd


def current_data(datasets: list[str] | tuple[str, ...], sets: tuple[str, ...] = ()) -> dict[str, dict]:
    """dataset config -> summary (with fingerprint) of the data it trains on today; exits naming any missing."""
    from agents.config import load_config
    from envs import load_dataset

    summaries, problems = {}, []
    for d in datasets:
        try:
            cfg = load_config(ROOT / "configs" / f"{d}.yaml", list(sets))
            summaries[d] = load_dataset(cfg.dataset, env_id=cfg.env or None).summary()
        except (FileNotFoundError, ValueError, KeyError) as err:
            problems.append(f"{d}: {err}")
    if problems:
        sys.exit("cannot load the data of every dataset:\n  " + "\n  ".join(problems))
    return summaries


def same_data(run_summary: dict, now: dict) -> bool:
    """Whether a run's dataset.json describes the dataset ``now`` (same content fingerprint)."""
    return run_summary.get("fingerprint") == now["fingerprint"]


def set_aside_stale(out: Path, cells: list[Cell], data: dict[str, dict]) -> list[Path]:
    """Move every run (finished or not) whose dataset.json differs from today's data to .../stale/, with its log;
    the new paths."""
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


def existing_cells(out: Path, datasets: list[str] | tuple[str, ...] | None = None) -> list[Cell]:
    """(dataset, agent, seed) of every run folder under ``out`` (of ``datasets`` only, if given)."""
    found = []
    for rd in sorted(Path(out).glob("*/*/seed*")):
        if rd.is_dir() and rd.name[4:].isdigit() and (datasets is None or rd.parent.parent.name in datasets):
            found.append((rd.parent.parent.name, rd.parent.name, int(rd.name[4:])))
    return found


def run_cell(exp: Experiment, cell: Cell) -> tuple[Cell, int, float]:
    """Train one run to completion (or failure) as a subprocess, appending to its .log next to the run folder;
    (cell, exit code, seconds). The command, and so --resume, is decided here, when it starts."""
    dataset, name, seed = cell
    rd = run_dir(exp.out, *cell)
    rd.parent.mkdir(parents=True, exist_ok=True)
    agent = exp.agent(name)
    cmd = train_command(exp, agent, dataset, seed)
    t0 = time.time()
    with open(rd.parent / f"{rd.name}.log", "a") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return cell, rc, time.time() - t0


def _say(cell: Cell, rc: int, seconds: float) -> None:
    print(f"{'/'.join(map(str, cell))}: exit {rc} after {seconds:.0f} s", flush=True)


def run_pool(exp: Experiment, todo: list[Cell]) -> list[Cell]:
    """The local engine: ``exp.jobs`` threads, each waiting on one subprocess; the failed cells."""
    failed = []
    with ThreadPoolExecutor(exp.jobs) as pool:
        for job in as_completed([pool.submit(run_cell, exp, c) for c in todo]):
            cell, rc, seconds = job.result()
            _say(cell, rc, seconds)
            if rc != 0:
                failed.append(cell)
    return failed


def run_ray(exp: Experiment, todo: list[Cell]) -> list[Cell]:
    """The Ray engine: one task per run with its CPU/GPU share; the failed cells (a task that raised or whose node
    was lost counts as failed; its run folder stays resumable)."""
    import ray

    # Ship this package by value: Ray's workers may not import it (a checkout that is not the installed one).
    ray.cloudpickle.register_pickle_by_value(sys.modules["sweep"])
    cpus = exp.cpus_per_run if exp.cpus_per_run is not None else exp.threads
    started_here = not ray.is_initialized()
    if started_here:
        local = {"num_cpus": math.ceil(exp.jobs * cpus), "include_dashboard": False} if exp.address is None else {}
        ray.init(address=exp.address, log_to_driver=False, **local)
    try:
        task = ray.remote(run_cell).options(num_cpus=cpus, num_gpus=exp.gpus_per_run, max_retries=1)
        pending = {task.remote(exp, c): c for c in todo}
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
            _say(cell, rc, seconds)
            if rc != 0:
                failed.append(cell)
        return failed
    finally:
        if started_here:
            ray.shutdown()


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def cells(exp: Experiment) -> list[Cell]:
    """The matrix, seed-major: a sweep cut short still covers every dataset and agent before it adds seeds."""
    return [(d, a.name, s) for s in exp.seeds for d in exp.datasets for a in exp.agents]


def missing(exp: Experiment) -> list[Cell]:
    """The cells of the matrix (in :func:`cells` order) without a results.json: what a run of ``exp`` trains."""
    return [c for c in cells(exp) if not (run_dir(exp.out, *c) / "results.json").exists()]


def run_experiment(exp: Experiment, check_data: bool = True) -> list[Cell]:
    """Train every run of the matrix that has no results.json yet (setting stale runs aside first); the failed
    cells."""
    if exp.engine == "ray" and not ray_available():
        raise RuntimeError('engine: ray needs Ray: pip install -e ".[ray]" (or pip install ray), or use engine: pool')
    if check_data:
        set_aside_stale(exp.out, existing_cells(exp.out, exp.datasets), current_data(exp.datasets, exp.set))
    matrix, todo = cells(exp), missing(exp)
    engine = exp.engine if exp.engine != "auto" else ("ray" if ray_available() else "pool")
    print(f"{len(matrix)} runs, {len(matrix) - len(todo)} already finished, {len(todo)} to go ({engine})")
    return (run_ray if engine == "ray" else run_pool)(exp, todo) if todo else []


def rescore_runs(
    out: Path,
    targets: list[str],
    name: str,
    episodes: int | None = None,
    datasets: list[str] | None = None,
    agents: list[str] | None = None,
) -> list[Path]:
    """Evaluate every finished run's final weights again at ``targets`` (numbers and/or data_max) with `run_rl.py
    eval`: the run's reset seeds and, unless ``episodes`` is given, its final episode count, into
    RUN/evals/rescore-NAME/. Training is not touched; a run already rescored under NAME is kept. The runs evaluated
    now."""
    done = []
    for res in sorted(Path(out).glob("*/*/seed*/results.json")):
        rd = res.parent
        if (datasets and rd.parent.parent.name not in datasets) or (agents and rd.parent.name not in agents):
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
