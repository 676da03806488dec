"""A trained Decision agent from Python: ``load_agent(run_dir)``, then ``reset`` and ``act`` in any Gymnasium env.

d3rlpy's stateful wrapper (``d3rlpy.load_learnable(path).as_stateful_wrapper(target_return=3600)``, then
``actor.predict(obs, reward)``) is the model for the shape of this API. ``Agent`` wraps the acting object that
``run_rl.py eval`` uses, :class:`agents.policy.DecisionPolicy`, with the run's own acting settings (acting mode,
context length K, CUDA graphs), so an episode played through it returns what ``eval`` reports for the same reset
seed.

>>> import numpy as np
>>> from agents.config import TrainConfig
>>> from agents.trainer import build_model
>>> cfg = TrainConfig(backbone="mingru", layout="stacked", dim=8, depth=1, dropout=0.0)
>>> agent = Agent(build_model(cfg, obs_dim=3, act_dim=2), cfg, targets=(100.0,))
>>> agent.acting_mode
'recurrent'
>>> agent.reset()  # the run's headline target
>>> agent.act(np.zeros(3)).shape, agent.act(np.ones(3), reward=1.0).shape
((2,), (2,))
>>> agent.reset(target_return=50.0, n_envs=4)  # four slots of a vector env
>>> agent.act_batch(np.zeros((4, 3)), np.zeros(4), np.ones(4, bool)).shape
(4, 2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agents.config import TrainConfig
from agents.decision import DecisionModel
from agents.policy import DecisionPolicy, acting_policy
from agents.trainer import load_model

__all__ = ["Agent", "load_agent"]


class Agent:
    """One trained model acting in one environment (``act``) or in the n slots of a vector env (``act_batch``).

    Args:
        model: the trained DecisionModel (put in eval mode; no gradients are taken).
        cfg: the run's config: its acting mode, K and CUDA-graph setting decide how the agent acts.
        targets: the run's evaluation targets; the first is the default of ``reset``.
        acting_mode: "window" or "recurrent"; default the run's (recurrent for the min-RNN backbones, as
            ``run_rl.py eval``; window for the transformer).
    """

    def __init__(
        self,
        model: DecisionModel,
        cfg: TrainConfig,
        targets: tuple[float, ...] = (),
        acting_mode: str | None = None,
    ) -> None:
        self.model, self.cfg, self.targets = model.eval(), cfg, tuple(float(t) for t in targets)
        self.acting_mode = acting_mode or cfg.resolved_acting_mode()
        self.policy: DecisionPolicy | None = None
        self._first = True

    def __repr__(self) -> str:
        cfg = self.cfg
        return (f"Agent({cfg.backbone}, {cfg.layout} tokens, {self.acting_mode} acting, K={cfg.context_len}, "
                f"targets={list(self.targets)})")  # fmt: skip

    def reset(self, target_return: float | None = None, n_envs: int = 1) -> None:
        """Start new episodes in ``n_envs`` slots, conditioned on ``target_return`` (raw return-to-go at t=0,
        e.g. 3600 for hopper; default: the run's headline target)."""
        if target_return is None:
            if not self.targets:
                raise ValueError("reset() needs a target_return: this agent has no evaluation targets, e.g. 3600")
            target_return = self.targets[0]
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        self.policy = acting_policy(self.model, self.cfg, target_return, self.acting_mode)
        self.policy.reset(n_envs)
        self._first = True

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """The action (act,) for observation ``obs`` (obs,) of a single env; ``reward`` is the reward of the previous
        step (ignored at the first step after ``reset``, whose ``obs`` starts the episode)."""
        policy = self._ready()
        if policy.n != 1:
            raise ValueError(
                f"act() drives one env, but reset() made {policy.n} slots; use act_batch(obs, reward, done)"
            )
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != (self.model.obs_dim,):
            raise ValueError(f"obs has shape {obs.shape}, expected ({self.model.obs_dim},): one env's observation")
        done = np.array([self._first])
        self._first = False
        return policy.act(obs[None], np.array([reward], dtype=np.float64), done)[0]

    def act_batch(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Actions (n, act) for the n slots of a vector env: ``obs`` (n, obs), ``reward`` (n,) of the previous step,
        ``done`` (n,) bool, True where ``obs`` starts a new episode (that slot's return-to-go and state restart;
        the first call after ``reset`` must have it True everywhere)."""
        return self._ready().act(obs, reward, done)

    def _ready(self) -> DecisionPolicy:
        if self.policy is None:
            raise RuntimeError("call reset(target_return=...) before acting")
        return self.policy


def load_agent(
    run_dir: str | Path, which: str = "latest", device: str | torch.device = "cpu", acting_mode: str | None = None
) -> Agent:
    """The trained agent of a run directory (or checkpoint folder) written by ``run_rl.py train``.

    Args:
        run_dir: the run directory (``--out`` of train) or one checkpoint folder in it.
        which: "latest" (the last checkpoint) or "best" (the best evaluation score).
        device: where the model acts, e.g. "cpu" or "cuda".
        acting_mode: "window" or "recurrent"; default the run's (as ``run_rl.py eval``).
    """
    if which not in ("latest", "best"):
        raise ValueError(f"which={which!r} is not valid; use 'latest' or 'best'")
    model, cfg, meta = load_model(run_dir, which)
    return Agent(model.to(device), cfg, tuple(meta.get("targets", ())), acting_mode)
