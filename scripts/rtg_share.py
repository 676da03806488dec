"""How much of a stacked token is the return-to-go: a diagnostic for targets far above the data.

The stacked layout embeds (R_t, s_t, a_{t-1}) into one token, which then goes through a LayerNorm. With the joint
Linear (``rtg_embed: joint``) R_t's part of the token grows with R_t, so at a target far above the data's returns
it fills the token and the LayerNorm squeezes the state's part away: every state looks alike. With
``rtg_embed: layernorm`` R_t's part is bounded. For each run and target this prints, over states and previous
actions drawn from the run's own dataset (timestep embedding left out):

- ``R share``: median of |R part| / |token| before the LayerNorm;
- ``state similarity``: mean cosine similarity, after the LayerNorm, between the tokens of two different states at
  the same R_t (1.0 = the state no longer changes the token).

    python scripts/rtg_share.py runs/equal-time-wsd/halfcheetah-medium-replay/minlstm/seed0 --targets 1000 4406 12000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's packages, installed or not

from agents.decision import DecisionModel  # noqa: E402
from agents.trainer import load_model  # noqa: E402
from envs.datasets import load_dataset  # noqa: E402


def token_parts(model: DecisionModel, r: Tensor, s: Tensor, prev: Tensor) -> tuple[Tensor, Tensor]:
    """(R_t's part, the rest) of the stacked token before the timestep embedding: r (n, 1) scaled, s (n, obs)
    normalised, prev (n, act) -> two (n, D). With rtg_embed layernorm or balanced R_t's part is the LayerNormed R
    embedding."""
    if hasattr(model, "embed_rtg"):
        return model.embed_rtg(r), model.embed_step(torch.cat((s, prev), dim=-1))
    w, b = model.embed_step.weight, model.embed_step.bias
    return F.linear(r, w[:, :1]), F.linear(torch.cat((s, prev), dim=-1), w[:, 1:], b)


def measure(run: Path, targets: list[float], samples: int, seed: int) -> list[dict[str, float]]:
    model, cfg, _ = load_model(run)
    if model.interleaved:
        raise SystemExit(f"{run}: layout 'interleaved' gives R_t its own token; this diagnostic is for 'stacked'")
    data = load_dataset(cfg.dataset)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.observations), size=samples, replace=False)
    starts = np.concatenate(([0], np.cumsum(data.episode_lengths)[:-1]))
    first = np.isin(idx, starts)
    prev = np.where(first[:, None], 0.0, data.actions[np.maximum(idx - 1, 0)])
    obs = torch.as_tensor(data.observations[idx], dtype=torch.float32)
    prev_t = torch.as_tensor(prev, dtype=torch.float32)
    rows = []
    with torch.no_grad():
        s, _ = model._norm_inputs(obs, torch.zeros(samples))
        half = samples // 2
        for target in targets:
            r = torch.full((samples, 1), target / model.rtg_scale)
            r_part, rest = token_parts(model, r, s, prev_t)
            token = r_part + rest
            share = (r_part.norm(dim=-1) / token.norm(dim=-1)).median().item()
            normed = F.layer_norm(token, (model.dim,))
            sim = F.cosine_similarity(normed[:half], normed[half : 2 * half], dim=-1).mean().item()
            rows.append({"target": target, "r_share": share, "state_similarity": sim})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories with a stacked-layout model")
    p.add_argument("--targets", nargs="+", type=float, required=True, help="returns-to-go to embed, unscaled")
    p.add_argument("--samples", type=int, default=2000, help="dataset steps drawn (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    a = p.parse_args(argv)
    out = {}
    for run in a.runs:
        rows = measure(run, a.targets, a.samples, a.seed)
        out[str(run)] = rows
        print(run)
        print("  target    R share   state similarity")
        for row in rows:
            print(f"  {row['target']:>8.0f}  {row['r_share']:>7.2f}   {row['state_similarity']:>7.3f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
