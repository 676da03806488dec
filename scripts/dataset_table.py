"""Markdown table of our generated datasets (minrnn/<env>/<level>-v0) beside the size of the D4RL dataset they
stand in for. Reads the Minari metadata written by `run_rl.py collect`.

    python scripts/dataset_table.py [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
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
        pol = rec.get("policy", {})
        src = pol.get("sac_step") if isinstance(pol, dict) else None
        if isinstance(pol, dict) and "parts" in pol:  # the medium-replay approximation
            src = None
            pol = {
                "replay": f"replay approximation: {len(pol['parts'])} stretches up to SAC step "
                f"{pol['medium_sac_step']:,}"
            }
        if isinstance(pol, dict) and {"medium", "expert"} <= set(pol):  # medium-expert: both policies
            pol = {"replay": f"SAC steps {pol['medium']['sac_step']:,} + {pol['expert']['sac_step']:,}"}
        out.append(
            f"| {meta['dataset_id']} | {meta['total_steps']:,} | {meta['total_episodes']:,} | "
            f"{meta['return_mean']:.0f} ± {meta['return_std']:.0f} | {score:.1f} | "
            f"{'SAC step ' + format(src, ',') if src else pol.get('replay', rec.get('algorithm', ''))} | "
            f"{rec.get('build_time_s', '–')} s | {d4rl} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
    a = ap.parse_args()
    print(
        "| dataset | transitions | episodes | return (mean ± std) | D4RL score | behaviour policy | build time "
        "| D4RL transitions |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(Path(a.root))))


if __name__ == "__main__":
    main()
