"""Fixtures for the agent tests: a tiny TrainConfig on the session's D4RL-layout Hopper file (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents.config import TrainConfig, apply_overrides

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
        return apply_overrides(TrainConfig(), values).validate()

    return make
