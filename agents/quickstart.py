"""`run_rl.py quickstart`: build a small dataset from a shipped policy, train a Decision-minGRU, print its score.

Everything it does is an ordinary command, shown in its output, so a user can rerun or extend each part:
`run_rl.py collect` for the data and `run_rl.py train --config configs/quickstart.yaml` for the agent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agents.behaviour.recipes import build, dataset_stale_reason
from agents.config import load_config
from envs.datasets import minari_root

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
DATASET_SIZE = 50_000  # transitions: ~20 s to collect here, plenty for a few thousand updates


def free_run_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist (a quickstart never overwrites a run)."""
    if not base.exists():
        return base
    k = 2
    while base.with_name(f"{base.name}-{k}").exists():
        k += 1
    return base.with_name(f"{base.name}-{k}")


def run_quickstart(out: str | Path = "runs/quickstart", overrides: list[str] | None = None) -> dict[str, Any]:
    """Collect (once) the quickstart dataset, train and evaluate the quickstart config; returns results.json."""
    from agents.trainer import train

    cfg = load_config(CONFIG, overrides or [])
    ds_id = cfg.dataset.split(":", 1)[1]
    stale = dataset_stale_reason(cfg.dataset)  # None when the dataset is missing or current
    if stale:  # the quickstart's own cache, made from a policy shipped before this checkout's: remake it
        print(f"[1/2] the existing {ds_id} is out of date ({stale}): collecting it again")
    if stale or not (minari_root() / ds_id).exists():
        print(f"[1/2] collecting {ds_id}: {DATASET_SIZE} hopper transitions from the shipped medium policy")
        print(
            f"      (same as: python run_rl.py collect --env hopper --level medium --size {DATASET_SIZE} "
            f"--name {ds_id})"
        )
        t0 = time.time()
        build("hopper", "medium", size=DATASET_SIZE, seed=0, name=ds_id, overwrite=bool(stale))
        print(f"      done in {time.time() - t0:.0f} s")
    else:
        print(f"[1/2] using the existing dataset {ds_id} in {minari_root()}")
    run_dir = free_run_dir(Path(out))
    print(
        f"[2/2] training a Decision-{cfg.backbone} ({cfg.layout} tokens, {cfg.resolved_acting_mode()} acting) for "
        f"{cfg.steps} steps into {run_dir}"
    )
    print(f"      (same as: python run_rl.py train --config configs/{CONFIG.name} --out {run_dir})")
    return train(cfg, run_dir) | {"run_dir": str(run_dir)}
