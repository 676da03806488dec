"""Fake finished run folders, written by hand, as `run_rl.py train` lays them out (results.json, evals.jsonl,
dataset.json, config.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sweep.launch import run_dir

#: D4RL-normalised scores of the data each fake dataset holds (hopper: return 1617, walker2d: 2297).
HOPPER_DATA = 100 * (1617.0 + 20.272305) / (3234.3 + 20.272305)  # 50.31
WALKER_DATA = 100 * (2297.0 - 1.629008) / (4592.3 - 1.629008)  # 50.00


def fake_run(
    out: Path,
    dataset: str,
    agent: str,
    seed: int,
    scores: list[float],
    minutes: list[float] | None = None,
    targets: dict[str, float] | None = None,
) -> Path:
    """A finished run whose evaluations (every 1000 updates) scored ``scores``, the last one the final evaluation
    (50 episodes; 10 during training). With ``minutes``: evaluated at those CPU minutes on a 20-minute CPU budget
    (wall time twice that, so a table on the wrong clock reads double). ``targets``: the final score at each target
    (first: the primary one), else one target, 3600."""
    rd = run_dir(out, dataset, agent, seed)
    rd.mkdir(parents=True)
    targets = targets or {"3600": scores[-1]}
    evals = []
    for i, s in enumerate(scores):
        e = {"step": 1000 * (i + 1), "score": s, "3600": {"return_mean": 10 * s, "normalized_mean": s}}
        if minutes:
            e |= {"train_min": 2 * minutes[i], "cpu_min": minutes[i]}
        evals.append(e)
    (rd / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    per_target = {t: {"n_episodes": 50, "normalized_mean": v, "return_mean": 10 * v, "acting_mode": "recurrent"}
                  for t, v in targets.items()}  # fmt: skip
    res = {"normalized_score_mean": scores[-1], "return_mean": 10 * scores[-1], "steps": 1000 * len(scores),
           "wall_time_s": 60.0 * len(scores), "score_reference": "d4rl", "acting_mode": "recurrent",
           "backbone": agent, "layout": "stacked", "episodes": 50, "per_target": per_target,
           "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0", "threads": 1}}  # fmt: skip
    if minutes:
        res |= {"train_min": 2 * minutes[-1], "cpu_min": minutes[-1]}
    (rd / "results.json").write_text(json.dumps(res))
    cfg = {"eval_episodes": 10, "budget_clock": "cpu" if minutes else "wall"}
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    env, data_return = {"hopper": ("Hopper-v5", 1617.0), "walker2d": ("Walker2d-v5", 2297.0)}[dataset.split("-")[0]]
    summary = {"name": f"minari:x/{dataset}-v0", "env_id": env, "return_mean": data_return, "score_reference": "d4rl",
               "fingerprint": "a"}  # fmt: skip
    (rd / "dataset.json").write_text(json.dumps(summary))
    return rd
