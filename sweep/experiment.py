"""An experiment: which datasets, agents and seeds to train, on what budget, into which folder, read from YAML.

An agent is a name with the configs and overrides that make it, so a new agent is a few lines of YAML
(experiments/equal-time.yaml)::

    name: equal-time
    out: runs/equal-time
    datasets: [hopper-medium, walker2d-medium]
    seeds: [0, 1, 2]
    steps: 1000000                      # a cap; the budget ends the runs
    set: {time_budget_min: 4}           # for every agent (budget, evaluation)
    agents:
      dt: {backbone: transformer, base: [dt]}          # configs/dt.yaml under the dataset's config
      mingru: {backbone: mingru, configs: [cpu-budget]}  # configs/cpu-budget.yaml over the dataset's config
      dt-cpu: {backbone: transformer, configs: [cpu-budget], set: {layout: interleaved, rtg_embed: joint}}

A run's config is layered as `run_rl.py train` layers its --config files: the agent's ``base`` configs, the
dataset's configs/<dataset>.yaml, the agent's ``configs``, then the experiment's ``set`` and the agent's own ``set``
(the agent's wins). Each run goes to ``out/<dataset>/<agent>/seed<k>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

#: The repository root: configs/ and run_rl.py live here.
ROOT = Path(__file__).resolve().parent.parent

_KEYS = {"name", "out", "datasets", "agents", "seeds", "steps", "set", "threads", "jobs", "engine", "ray"}
_AGENT_KEYS = {"backbone", "base", "configs", "set"}
_RAY_KEYS = {"address", "cpus_per_run", "gpus_per_run"}


def config_path(name: str) -> Path:
    """The file a config name means: a path ending .yaml as given (made absolute), else configs/NAME.yaml."""
    return Path(name).resolve() if name.endswith(".yaml") else ROOT / "configs" / f"{name}.yaml"


def overrides(values: dict | None, where: str) -> tuple[str, ...]:
    """``{key: value}`` as run_rl.py's ``--set KEY=VALUE`` strings (non-strings as JSON, which YAML reads back).

    >>> overrides({"lr": 0.0003, "eval_at_min": [0.25, 0.5], "layout": "stacked"}, "set")
    ('lr=0.0003', 'eval_at_min=[0.25,0.5]', 'layout=stacked')
    """
    if values is None:
        return ()
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping of config keys to values, got {values!r}")
    return tuple(
        f"{k}={v}" if isinstance(v, str) else f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in values.items()
    )


@dataclass(frozen=True)
class Agent:
    """One column of the matrix."""

    name: str  # the run folder's name and the tables' column: out/<dataset>/<name>/seed<k>
    backbone: str  # run_rl.py --backbone
    base: tuple[str, ...] = ()  # configs under the dataset's config (e.g. dt: DT's published recipe)
    configs: tuple[str, ...] = ()  # configs over the dataset's config (recipes, e.g. cpu-budget)
    set: tuple[str, ...] = ()  # KEY=VALUE overrides after the experiment's


@dataclass(frozen=True)
class Experiment:
    """A matrix of datasets x agents x seeds and how to run it (see the module docstring for the YAML)."""

    name: str  # names the tidy table (<out>/<name>.csv)
    out: Path  # the runs' folder
    datasets: tuple[str, ...]  # config names in configs/ (without .yaml)
    agents: tuple[Agent, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 1_000_000  # updates per run: the budget, or a cap when a time budget ends the runs
    set: tuple[str, ...] = ()  # KEY=VALUE overrides for every agent (budget, evaluation)
    threads: int = 1  # torch threads per run
    jobs: int = 1  # runs at once on this machine (the pool, or a local Ray)
    engine: str = "auto"  # ray, pool, or auto (ray when installed)
    address: str | None = None  # Ray cluster to join ('auto' or HOST:PORT); None: a local Ray
    cpus_per_run: float | None = None  # Ray CPUs per run (None: threads)
    gpus_per_run: float = 0.0  # Ray GPUs per run; 0.5 puts two runs on a GPU

    def agent(self, name: str) -> Agent:
        """The agent called ``name``."""
        return next(a for a in self.agents if a.name == name)


def _unknown(keys: set, allowed: set, where: str) -> None:
    if keys - allowed:
        raise ValueError(f"{where}: unknown key(s) {sorted(keys - allowed)}; allowed: {sorted(allowed)}")


def _names(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of names, got {value!r}")
    return tuple(value)


def parse_agent(name: str, spec: dict, where: str) -> Agent:
    """An agent from its YAML mapping; the config files it names must exist."""
    if not isinstance(spec, dict) or "backbone" not in spec:
        raise ValueError(f"{where}: agent {name!r} needs a mapping with at least 'backbone', got {spec!r}")
    _unknown(set(spec), _AGENT_KEYS, f"{where}: agent {name!r}")
    agent = Agent(
        name=str(name),
        backbone=str(spec["backbone"]),
        base=_names(spec.get("base", []), f"{where}: agent {name!r} base"),
        configs=_names(spec.get("configs", []), f"{where}: agent {name!r} configs"),
        set=overrides(spec.get("set"), f"{where}: agent {name!r} set"),
    )
    for c in agent.base + agent.configs:
        if not config_path(c).is_file():
            raise FileNotFoundError(
                f"{where}: agent {name!r} names config {c!r}, but {config_path(c)} does not exist "
                "(give a configs/ name or a path ending .yaml)"
            )
    return agent


def parse_experiment(raw: dict, where: str = "experiment") -> Experiment:
    """An experiment from its YAML mapping, checked: every dataset has a config, every agent's configs exist."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a YAML mapping, got {type(raw).__name__}")
    _unknown(set(raw), _KEYS, where)
    missing = [k for k in ("name", "out", "datasets", "agents") if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    datasets = _names(raw["datasets"], f"{where}: datasets")
    unknown = [d for d in datasets if not (ROOT / "configs" / f"{d}.yaml").is_file()]
    if unknown:
        choices = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
        raise FileNotFoundError(f"{where}: no config for dataset(s) {unknown} in configs/; choose from {choices}")
    if not isinstance(raw["agents"], dict) or not raw["agents"]:
        raise ValueError(f"{where}: agents must be a non-empty mapping of agent names to their settings")
    ray = raw.get("ray") or {}
    _unknown(set(ray), _RAY_KEYS, f"{where}: ray")
    exp = Experiment(
        name=str(raw["name"]),
        out=Path(raw["out"]),
        datasets=datasets,
        agents=tuple(parse_agent(n, s, where) for n, s in raw["agents"].items()),
        seeds=tuple(int(s) for s in raw.get("seeds", (0, 1, 2))),
        steps=int(raw.get("steps", 1_000_000)),
        set=overrides(raw.get("set"), f"{where}: set"),
        threads=int(raw.get("threads", 1)),
        jobs=int(raw.get("jobs", 1)),
        engine=str(raw.get("engine", "auto")),
        address=ray.get("address"),
        cpus_per_run=ray.get("cpus_per_run"),
        gpus_per_run=float(ray.get("gpus_per_run", 0.0)),
    )
    if exp.engine not in ("auto", "ray", "pool"):
        raise ValueError(f"{where}: engine must be auto, ray or pool, got {exp.engine!r}")
    if exp.jobs < 1:
        raise ValueError(f"{where}: jobs must be >= 1, got {exp.jobs}")
    if exp.engine == "pool" and (exp.address or exp.gpus_per_run or exp.cpus_per_run is not None):
        raise ValueError(f"{where}: ray.address, ray.cpus_per_run and ray.gpus_per_run need engine: ray")
    return exp


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment YAML file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no experiment file {path}; see experiments/ for examples")
    return parse_experiment(yaml.safe_load(path.read_text()), str(path))
