"""Where a generated dataset came from, read from its Minari metadata: is it still what the recipes make now?

`run_rl.py collect` (agents/behaviour/recipes.py) records in each dataset's metadata which shipped behaviour
policies made it: file name, SAC step and the weights' sha256, and the folder they were shipped in
(``recipe["policy_dir"]``). A dataset is stale when that folder now ships other weights under one of those names.
Only the metadata and the policy files are read, so training code can warn about stale data without importing
the dataset generators.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["dataset_recipe", "dataset_stale_reason", "file_sha256", "stale_reason", "warn_if_stale"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_recipe(spec: str, root: str | Path | None = None) -> dict[str, Any] | None:
    """The ``recipe`` a "minari:<id>" dataset on disk was built with, or None (not ours, or not on disk)."""
    from envs.datasets import minari_root

    if not spec.startswith("minari:"):
        return None
    meta_path = Path(root or minari_root()) / spec.split(":", 1)[1] / "data" / "metadata.json"
    if not meta_path.is_file():
        return None
    recipe = json.loads(meta_path.read_text()).get("recipe")
    return recipe if isinstance(recipe, dict) else None


def dataset_stale_reason(spec: str, root: str | Path | None = None, policy_dir: str | Path | None = None) -> str | None:
    """``stale_reason`` for a dataset on disk made by `run_rl.py collect`; None for anything else.

    ``policy_dir`` defaults to the folder the dataset's metadata names (datasets built before it was recorded are
    then never reported stale).
    """
    recipe = dataset_recipe(spec, root)
    if recipe is None:
        return None
    policy_dir = policy_dir or recipe.get("policy_dir")
    return stale_reason(recipe, Path(policy_dir)) if policy_dir else None


def stale_reason(recipe: dict[str, Any], policy_dir: Path) -> str | None:
    """Why a dataset built from shipped policies no longer matches them (re-shipped since), or None if it does.

    Compares each shipped policy the recipe names with `policy_dir/index.json`: by the weights' sha256 when the
    recipe recorded it, else by SAC step. Datasets from a SAC run or from uniform actions are never stale here.
    """
    index_path = Path(policy_dir) / "index.json"
    if not index_path.exists():
        return None
    shipped = {
        v["file"]: (v["sac_step"], Path(policy_dir) / v["file"])
        for entry in json.loads(index_path.read_text()).values()
        for v in entry["policies"].values()
    }
    for u in _shipped_policies_used(recipe):
        if u["file"] not in shipped:
            return f"its policy {u['file']} is no longer shipped"
        step, path = shipped[u["file"]]
        if u["sac_step"] != step:
            return (
                f"it was built from {u['file']} of SAC step {u['sac_step']:,}; the shipped one is now "
                f"from step {step:,}"
            )
        if "sha256" in u and u["sha256"] != file_sha256(path):
            return f"the weights shipped as {u['file']} have changed since it was built"
    return None


def _shipped_policies_used(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """[{file, sac_step, sha256?}] for every shipped policy a recipe names (its three shapes: one policy, a
    medium/expert pair, or the replay approximation's parts)."""
    pol = recipe.get("policy") or {}
    used = [pol] if "file" in pol else [v for v in pol.values() if isinstance(v, dict) and "file" in v]
    used = [u for u in used if u.get("source", "shipped") == "shipped"]
    used += [
        {"file": p["policy"], "sac_step": p["sac_step"], **({"sha256": p["sha256"]} if "sha256" in p else {})}
        for p in pol.get("parts", [])
        if p["policy"] != "uniform-random"
    ]
    return used


def warn_if_stale(spec: str) -> None:
    """Tell the user (stderr) when a dataset made by `run_rl.py collect` predates the policies shipped now."""
    reason = dataset_stale_reason(spec)
    if reason:
        print(
            f"warning: {spec} is out of date with the shipped behaviour policies ({reason}); training on it anyway. "
            "Rebuild it with the same `run_rl.py collect` command plus --overwrite to get the data the recipes "
            "make now.",
            file=sys.stderr,
        )
