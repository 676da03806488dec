"""Markdown table of our generated datasets (minrnn/<env>/<level>-v0) beside the size of the D4RL dataset they
stand in for. Reads the Minari metadata written by `run_rl.py collect`. With --policies: the table of the shipped
behaviour policies instead, from agents/behaviour/policies/index.json.

    python scripts/dataset_table.py [--root DIR]
    python scripts/dataset_table.py --policies
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from envs.datasets import minari_root  # noqa: E402
from envs.scores import normalized_score  # noqa: E402

# D4RL v2 dataset sizes (transitions), from the D4RL paper's dataset descriptions.
D4RL_SIZE = {
    "medium": "1M",
    "expert": "1M",
    "medium-expert": "2M",
    "random": "1M",
    "medium-replay": {"hopper": "402k", "halfcheetah": "202k", "walker2d": "302k"},
}


def rows(root: Path) -> list[str]:
    out = []
    for meta_path in sorted(root.glob("minrnn/*/*/data/metadata.json")):
        if "ablation" in meta_path.parts[-3]:
            continue
        meta = json.loads(meta_path.read_text())
        rec = meta.get("recipe", {})
        env = meta_path.parts[-4]
        level = rec.get("level", meta_path.parts[-3].rsplit("-v", 1)[0])
        d4rl = D4RL_SIZE.get(level, "–")
        d4rl = d4rl.get(env, "–") if isinstance(d4rl, dict) else d4rl
        score = float(normalized_score(env, [meta["return_mean"]])[0])
        out.append(
            f"| {meta['dataset_id']} | {meta['total_steps']:,} | {meta['total_episodes']:,} | "
            f"{meta['return_mean']:.0f} ± {meta['return_std']:.0f} | {score:.1f} | {behaviour(rec)} | "
            f"{rec.get('build_time_s', '–')} s | {d4rl} |"
        )
    return out


def behaviour(recipe: dict) -> str:
    """Which policy made a dataset, from its recipe block."""
    pol = recipe.get("policy") or {}
    if "parts" in pol:  # the medium-replay approximation
        return f"replay approximation: {len(pol['parts'])} stretches up to SAC step {pol['medium_sac_step']:,}"
    if {"medium", "expert"} <= set(pol):  # medium-expert
        return f"SAC steps {pol['medium']['sac_step']:,} + {pol['expert']['sac_step']:,}"
    if "sac_step" in pol:
        return f"SAC step {pol['sac_step']:,}"
    return pol.get("replay", recipe.get("algorithm", ""))


def policy_rows(index: dict) -> list[str]:
    """One row per shipped medium/expert policy: SAC step, SAC's own evaluation, and the re-measured returns."""
    out = []
    for env in sorted(index):
        for role in ("medium", "expert"):
            v = index[env]["policies"].get(role)
            if v is None:
                continue
            sam, det = v["sampled"], v["deterministic"]
            out.append(
                f"| {env} | {role} | {v['sac_step'] // 1000}k | {v['sac_eval_return']:.0f} | "
                f"{sam['return_mean']:.0f} ± {sam['return_std']:.0f} / {sam['normalized_score']:.1f} | "
                f"{det['return_mean']:.0f} / {det['normalized_score']:.1f} |"
            )
        series = sorted(v["sac_step"] for k, v in index[env]["policies"].items() if k.startswith("replay_"))
        out.append(f"| {env} | replay series | {', '.join(f'{s // 1000}k' for s in series) or '–'} | | | |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=minari_root(), help="Minari datasets root (default $MINARI_DATASETS_PATH)")
    ap.add_argument("--policies", action="store_true", help="the shipped policies' table instead")
    a = ap.parse_args()
    if a.policies:
        policies = Path(__file__).resolve().parent.parent / "agents" / "behaviour" / "policies"
        index = json.loads((policies / "index.json").read_text())
        print(
            "| env | role | SAC step | SAC eval return (5 ep., deterministic) | sampled actions, 10 ep.: return / "
            "D4RL score | deterministic, 10 ep.: return / D4RL score |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(policy_rows(index)))
        return
    print(
        "| dataset | transitions | episodes | return (mean ± std) | D4RL score | behaviour policy | build time "
        "| D4RL transitions |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(Path(a.root))))


if __name__ == "__main__":
    main()
