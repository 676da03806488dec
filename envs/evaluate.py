"""Vectorised, seeded evaluation of any stateful policy object on Gymnasium environments.

Episode k (k = 0..N-1) always runs with reset seed ``seed + k``, whatever ``n_envs`` or the vector mode, so a
deterministic policy gets the same per-episode returns as a plain loop with ``env.reset(seed=seed + k)``.
Slots finish at different times; a freed slot takes the next episode index, and once all N are assigned a
freed slot idles (it keeps stepping a throw-away episode whose results are discarded).

>>> import numpy as np
>>> class Zero:
...     def reset(self, n_envs): pass
...     def act(self, obs, reward, done): return np.zeros((len(obs), 3))
>>> res = evaluate(Zero(), "hopper", n_episodes=2, n_envs=2, seed=0, vector="sync", max_steps=5)
>>> res.lengths.tolist(), res.score_reference
([5, 5], 'd4rl')
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from envs.make import DEFAULT_MAX_EPISODE_STEPS, make_env, resolve_env_id
from envs.scores import reference_for, score_with_reference


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Policy(Protocol):
    """What ``evaluate`` drives. Recurrent agents keep their state in it; DT keeps its window there."""

    def reset(self, n_envs: int) -> None:
        """Called once before the first step with the number of parallel slots."""

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """obs (n_envs, obs) float; reward (n_envs,) from the previous step, 0.0 at an episode's start;
        done (n_envs,) bool, True where obs is the first observation of a new episode (reset that slot's
        state).
        Returns actions (n_envs, act)."""


@dataclass(frozen=True)
class EvalResult:
    """Per-episode results of one evaluation, in episode order (episode k used reset seed ``seed + k``)."""

    env_id: str
    returns: np.ndarray  # (N,) float64 undiscounted episode returns
    lengths: np.ndarray  # (N,) int64 episode lengths
    normalized_scores: np.ndarray  # (N,) float64 on the 0-100 scale; NaN when score_reference == "none"
    score_reference: str  # "d4rl", "minari" or "none"
    wall_time_s: float  # seconds from env creation to the last episode's end
    seed: int  # episode k used reset seed seed + k
    n_envs: int  # parallel slots actually used (min(n_envs, N))
    vector: str  # "sync" or "async", as resolved
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, copied into to_dict()

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def return_std(self) -> float:
        return float(self.returns.std())

    @property
    def normalized_mean(self) -> float:
        return float(self.normalized_scores.mean())

    @property
    def normalized_std(self) -> float:
        return float(self.normalized_scores.std())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-episode lists, for results.json."""
        return {
            "env_id": self.env_id,
            "n_episodes": int(len(self.returns)),
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "normalized_mean": self.normalized_mean,
            "normalized_std": self.normalized_std,
            "score_reference": self.score_reference,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
            "normalized_scores": [float(s) for s in self.normalized_scores],
            "seed": self.seed,
            "n_envs": self.n_envs,
            "vector": self.vector,
            "wall_time_s": self.wall_time_s,
            **self.extra,
        }


def _make_vector_env(env_id: str, n_envs: int, vector: str, max_steps: int) -> gym.vector.VectorEnv:
    fns = [functools.partial(make_env, env_id, max_episode_steps=max_steps)] * n_envs
    cls = AsyncVectorEnv if vector == "async" else SyncVectorEnv
    return cls(fns, autoreset_mode=AutoresetMode.DISABLED)


def _resolve_vector(vector: str, n_envs: int) -> str:
    """ "auto": async only with a core for each env plus one for the policy. On the 2-core dev machine async was
    2-7x slower than sync for every case in scripts/bench_envs.py (pipe round trips and 10 processes on 2 cores
    cost more than MuJoCo steps of ~50-100 us); the rule for bigger machines is not measured."""
    if vector == "auto":
        return "async" if 1 < n_envs < _usable_cores() else "sync"
    if vector not in ("sync", "async"):
        raise ValueError(f"unknown vector mode {vector!r}: use 'sync', 'async' or 'auto'")
    return vector


#: How far (absolute) an action may overshoot the bounds before evaluation warns; float round-off is not a bug.
ACTION_BOUND_TOLERANCE = 1e-4


def _checked_actions(
    actions: Any, shape: tuple[int, int], low: np.ndarray, high: np.ndarray, warn: bool = True
) -> tuple[np.ndarray, bool]:
    """(actions (n_envs, act) as float64 clipped to [low, high], whether any overshot by more than
    ACTION_BOUND_TOLERANCE); a warning about the first overshoot when ``warn`` (callers warn once per rollout).

    Clip and warn rather than refuse: MuJoCo clamps a limited actuator's control to its ctrlrange anyway (MuJoCo
    XML reference, actuator ``ctrllimited``), so clipping changes nothing the simulator would do, while the v5
    locomotion envs charge their control cost on the action as given (gymnasium/envs/mujoco/hopper_v5.py,
    ``control_cost``), so an unclipped 50 would turn the return into a penalty no policy earned. An error would
    end a long training run at an evaluation for a policy that overshoots slightly (a Gaussian head without tanh).
    DT's tanh head never overshoots bounds of 1 and is unaffected.
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"policy.act returned actions of shape {a.shape}, expected (n_envs, act) = {shape}")
    if not np.isfinite(a).all():
        row = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise ValueError(f"policy.act returned NaN or inf actions, first in slot {row}: {a[row]}")
    excess = np.maximum(a - high, low - a)  # (n_envs, act) > 0 where outside the bounds
    outside = bool((excess > ACTION_BOUND_TOLERANCE).any())
    if outside and warn:
        row = int(np.flatnonzero((excess > ACTION_BOUND_TOLERANCE).any(axis=1))[0])
        warnings.warn(
            f"policy.act returned actions outside the action space [{low.min():g}, {high.max():g}] (slot {row}: "
            f"{a[row].tolist()}); they are clipped to the bounds before stepping. Scale the policy's output to the "
            "action space (e.g. tanh times the bound) if this is unexpected.",
            stacklevel=3,
        )
    return np.clip(a, low, high), outside


def evaluate(
    policy: Policy,
    env_id: str,
    n_episodes: int = 10,
    n_envs: int = 10,
    seed: int = 0,
    score_reference: str = "d4rl",
    vector: str = "auto",
    max_steps: int = DEFAULT_MAX_EPISODE_STEPS,
    ref_min: float | None = None,
    ref_max: float | None = None,
) -> EvalResult:
    """Run ``n_episodes`` episodes of ``policy`` on ``n_envs`` parallel copies of ``env_id``.

    Args:
        policy: object with ``reset(n_envs)`` and ``act(obs, reward, done) -> actions`` (see ``Policy``).
        env_id: Gymnasium id or shorthand ("hopper").
        n_episodes: N, the number of episodes; episode k uses reset seed ``seed + k``.
        n_envs: parallel slots; capped at N.
        seed: base reset seed.
        score_reference: "d4rl", "minari" (needs ref_min/ref_max, e.g. from the store) or "none".
        vector: "sync" (SyncVectorEnv, one process), "async" (AsyncVectorEnv, one process per env) or "auto".
        max_steps: TimeLimit per episode (1000 for the D4RL locomotion tasks).
        ref_min, ref_max: reference returns for score_reference="minari".

    Actions are clipped to the action space's bounds before stepping, with a warning when they overshoot
    (see ``_checked_actions`` for why clip rather than refuse).
    """
    if n_episodes < 1 or n_envs < 1 or max_steps < 1:
        raise ValueError(f"n_episodes, n_envs and max_steps must be >= 1, got {n_episodes}, {n_envs}, {max_steps}")
    env_id = resolve_env_id(env_id)
    lo_hi = reference_for(env_id, score_reference, ref_min, ref_max)
    n = min(n_envs, n_episodes)
    mode = _resolve_vector(vector, n)
    t0 = time.perf_counter()
    venv = _make_vector_env(env_id, n, mode, max_steps)
    try:
        returns, lengths = _run_episodes(policy, venv, n_episodes, seed)
    finally:
        venv.close()
    return EvalResult(
        env_id=env_id,
        returns=returns,
        lengths=lengths,
        normalized_scores=score_with_reference(returns, *lo_hi, score_reference),
        score_reference=score_reference,
        wall_time_s=time.perf_counter() - t0,
        seed=seed,
        n_envs=n,
        vector=mode,
    )


def _run_episodes(
    policy: Policy, venv: gym.vector.VectorEnv, n_episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The slot loop; returns (returns (N,), lengths (N,)) in episode order."""
    n = venv.num_envs
    space = venv.single_action_space
    act_shape = (n, *space.shape)
    slot_episode = np.arange(n)  # (n,) episode index run by each slot; -1 = idle
    next_episode = n
    ep_return = np.zeros(n)
    ep_length = np.zeros(n, dtype=np.int64)
    returns = np.full(n_episodes, np.nan)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    finished = 0
    warned = False  # one out-of-bounds warning per evaluation, not one per step

    obs, _ = venv.reset(seed=[seed + k for k in range(n)])
    reward = np.zeros(n)
    done = np.ones(n, dtype=bool)
    policy.reset(n)
    while finished < n_episodes:
        actions, outside = _checked_actions(policy.act(obs, reward, done), act_shape, space.low, space.high, not warned)
        warned = warned or outside
        obs, reward, terminated, truncated, _ = venv.step(actions)
        reward = np.asarray(reward, dtype=np.float64)
        ep_return += reward
        ep_length += 1
        done = np.logical_or(terminated, truncated)
        if not done.any():
            continue
        seeds: list[int | None] = [None] * n
        for i in np.flatnonzero(done):  # loop over finished slots only
            k = slot_episode[i]
            if k >= 0:
                returns[k], lengths[k] = ep_return[i], ep_length[i]
                finished += 1
            slot_episode[i] = next_episode if next_episode < n_episodes else -1
            if next_episode < n_episodes:
                seeds[i] = seed + next_episode
                next_episode += 1
            ep_return[i], ep_length[i] = 0.0, 0
        if finished < n_episodes:
            obs, _ = venv.reset(seed=seeds, options={"reset_mask": done.copy()})
            reward = np.where(done, 0.0, reward)
    return returns, lengths
