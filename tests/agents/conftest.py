"""Fixtures for the agent tests: a tiny TrainConfig on the session's D4RL-layout Hopper file (tests/conftest.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from agents.config import TrainConfig, apply_overrides
from agents.decision import masked_mse

#: A model and a run small enough for a busy 2-core CPU: dim 32, 1 layer, K=5, batch 16, short evaluations.
TINY: dict[str, Any] = {
    "dim": 32, "depth": 1, "context_len": 5, "batch_size": 16, "lr": 1e-3, "warmup_steps": 10, "dropout": 0.0,
    "eval_episodes": 2, "eval_envs": 2, "eval_max_steps": 15, "eval_every": 0,
    "target_returns": [100.0], "final_eval_episodes": 2, "log_every": 10, "histogram_every": 50, "checkpoint_every": 0,
    "progress": False, "threads": 1,
}  # fmt: skip


@pytest.fixture
def tiny_config(d4rl_file: Any) -> Callable[..., TrainConfig]:
    """tiny_config(**overrides) -> a validated TrainConfig training on the tiny Hopper D4RL file."""

    def make(**overrides: Any) -> TrainConfig:
        values = {**TINY, "dataset": f"d4rl:{d4rl_file.path}", "env": "Hopper-v5", **overrides}
        return apply_overrides(TrainConfig(), values)

    return make


def eager_updates(
    model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], lr: float, weight_decay: float, warmup: int,
    clip: float, foreach: bool | None = None,
) -> list[float]:  # fmt: skip
    """agents/trainer.py's update (make_updater), spelled out as the reference for the graphed and vmapped updates:
    loss, zero_grad, backward, clip_grad_norm_, AdamW, LambdaLR warm-up ``min((s + 1) / warmup, 1)``; returns the
    losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=foreach)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, 1.0))
    losses = []
    for b in batches:
        pred, _ = model(b["states"], b["actions"], b["rtg"], b["timesteps"], b["mask"])
        loss = masked_mse(pred, b["actions"], b["mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), clip or math.inf)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@pytest.fixture
def eager_reference() -> Callable[..., list[float]]:
    """The function ``eager_updates`` (a fixture, so that test modules need not import conftest)."""
    return eager_updates
