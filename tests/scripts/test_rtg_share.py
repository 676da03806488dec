"""scripts/rtg_share.py: the R_t share and state similarity of stacked tokens, against the token computed whole."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents.config import TrainConfig, apply_overrides
from agents.trainer import load_model, train
from envs.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("rtg_share", ROOT / "scripts" / "rtg_share.py")
rtg_share = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtg_share)


def tiny_run(d4rl_file, out: Path, rtg_embed: str) -> Path:
    cfg = apply_overrides(TrainConfig(), {
        "dataset": f"d4rl:{d4rl_file.path}", "env": "Hopper-v5", "backbone": "mingru", "layout": "stacked",
        "rtg_embed": rtg_embed, "dim": 16, "depth": 1, "context_len": 4, "batch_size": 8, "steps": 3,
        "warmup_steps": 1, "eval_every": 0, "eval_episodes": 1, "eval_envs": 1, "final_eval_episodes": 1,
        "eval_max_steps": 3, "target_returns": [100.0], "histogram_every": 0, "checkpoint_every": 0,
        "progress": False, "threads": 1,
    })  # fmt: skip
    train(cfg, out)
    return out


def test_joint_share_and_similarity_match_the_whole_token(d4rl_file, tmp_path: Path) -> None:
    run = tiny_run(d4rl_file, tmp_path / "joint", "joint")
    rows = rtg_share.measure(run, [50.0, 1e6], samples=40, seed=3)
    model, cfg, _ = load_model(run)
    data = load_dataset(cfg.dataset)
    idx = np.random.default_rng(3).choice(len(data.observations), size=40, replace=False)
    starts = np.concatenate(([0], np.cumsum(data.episode_lengths)[:-1]))
    prev = np.where(np.isin(idx, starts)[:, None], 0.0, data.actions[np.maximum(idx - 1, 0)])
    with torch.no_grad():
        s = (torch.as_tensor(data.observations[idx]).float() - model.state_mean) / model.state_std
        for row, target in zip(rows, (50.0, 1e6), strict=True):
            r = torch.full((40, 1), target / cfg.rtg_scale)
            whole = model.embed_step(torch.cat((r, s, torch.as_tensor(prev).float()), dim=-1))
            r_part = model.embed_step.weight[:, 0] * r
            assert row["r_share"] == pytest.approx((r_part.norm(dim=-1) / whole.norm(dim=-1)).median().item(), rel=1e-5)
            normed = F.layer_norm(whole, (cfg.dim,))
            sim = F.cosine_similarity(normed[:20], normed[20:], dim=-1).mean().item()
            assert row["state_similarity"] == pytest.approx(sim, rel=1e-5)
    assert rows[1]["r_share"] > 0.99 and rows[1]["state_similarity"] > 0.99  # far above the data, R_t is the token


@pytest.mark.parametrize("embed", ["layernorm", "balanced"])
def test_layernormed_rtg_share_stops_growing(embed: str, d4rl_file, tmp_path: Path, capsys) -> None:
    run = tiny_run(d4rl_file, tmp_path / "ln", embed)
    rtg_share.main([str(run), "--targets", "1e5", "1e6", "--samples", "40", "--json", str(tmp_path / "out.json")])
    (rows,) = json.loads((tmp_path / "out.json").read_text()).values()
    assert [r["target"] for r in rows] == [1e5, 1e6]
    assert abs(rows[0]["r_share"] - rows[1]["r_share"]) < 1e-3
    assert abs(rows[0]["state_similarity"] - rows[1]["state_similarity"]) < 1e-3 and rows[1]["state_similarity"] < 0.99
    assert "state similarity" in capsys.readouterr().out
