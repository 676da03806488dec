"""In-memory trajectory store: flat per-step arrays, per-episode views, returns-to-go, and every batch sampler.

All per-step data lives in flat arrays of N steps (episodes back to back); an episode is a slice.
Samplers build flat index arrays of shape (B, K) and gather with one fancy-indexing call per field: no
Python loop over steps or over batch rows.

>>> import numpy as np
>>> obs = np.arange(10, dtype=np.float32).reshape(5, 2)                 # (N=5, obs=2)
>>> store = TrajectoryStore(obs, np.zeros((5, 1), np.float32), np.ones(5, np.float32),
...                         episode_lengths=[3, 2], terminated=[True, False], truncated=[False, True],
...                         env_id="Hopper-v5")
>>> store.episodes[0].rtg.tolist(), store.episode_returns.tolist()
([3.0, 2.0, 1.0], [3.0, 2.0])
>>> b = store.sample_windows(4, K=3, rng=np.random.default_rng(0), start="episode")
>>> b["states"].shape, b["mask"].shape, b["timesteps"].dtype
((4, 3, 2), (4, 3), dtype('int64'))
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.scores import SCORE_REFERENCES, reference_for, score_with_reference

#: Keys of every sampled batch, in order: states (B,K,obs) f32, actions (B,K,act) f32, rewards (B,K) f32,
#: rtg (B,K) f32, timesteps (B,K) i64, mask (B,K) bool.
BATCH_KEYS: tuple[str, ...] = ("states", "actions", "rewards", "rtg", "timesteps", "mask")


@dataclass(frozen=True)
class StoreInfo:
    """What evaluation needs to know about a dataset: the env it comes from and how its returns are scored.

    Saved in every checkpoint, so a trained model is evaluated the same way without loading the data again.
    """

    env_id: str  # Gymnasium id, e.g. "Hopper-v5"
    score_reference: str  # "d4rl", "minari" or "none"; see envs.scores
    ref_min: float | None = None  # reference returns of the 0-100 scale (None: looked up or absent)
    ref_max: float | None = None
    return_max: float | None = None  # the best episode return in the data (None: a checkpoint from before it)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreInfo:
        return cls(data["env_id"], data["score_reference"], data.get("ref_min"), data.get("ref_max"),
                   data.get("return_max"))  # fmt: skip


@dataclass(frozen=True)
class Episode:
    """One episode of T steps: states acted on, actions, rewards, returns-to-go, and how it ended."""

    observations: np.ndarray  # (T, obs) float32: the T states acted on (not T+1)
    actions: np.ndarray  # (T, act) float32
    rewards: np.ndarray  # (T,) float32
    rtg: np.ndarray  # (T,) float32: undiscounted return from step t to the episode's end
    terminated: bool  # ended in a terminal state (e.g. the hopper fell)
    truncated: bool  # cut by a time limit, or the data ran out with no end flag

    def __len__(self) -> int:
        return len(self.rewards)


def first_bad_index(values: np.ndarray) -> int | None:
    """Flat-row index of the first non-finite value along axis 0, or None if all are finite."""
    bad = ~np.isfinite(values)
    if bad.ndim > 1:
        bad = bad.reshape(len(bad), -1).any(axis=1)
    idx = np.flatnonzero(bad)
    return int(idx[0]) if len(idx) else None


def check_finite(key: str, values: np.ndarray, source: str) -> None:
    """ValueError naming the key, the first bad index and its value if ``values`` holds NaN or inf."""
    idx = first_bad_index(values)
    if idx is not None:
        raise ValueError(
            f"{source}: '{key}' holds NaN or inf, first at index {idx} (value {values[idx]!r}); "
            "drop or repair those steps before loading."
        )


class TrajectoryStore:
    """Episodes of one environment, stored flat, with returns-to-go, state statistics and samplers.

    Args:
        observations: (N, obs) states acted on, episodes back to back.
        actions: (N, act).
        rewards: (N,).
        episode_lengths: (E,) positive lengths summing to N.
        terminated: (E,) bool, episode ended in a terminal state.
        truncated: (E,) bool, episode cut by a time limit or by the end of the data.
        env_id: Gymnasium id the data comes from, e.g. "Hopper-v5".
        score_reference: "d4rl", "minari" or "none"; see ``envs.scores``.
        ref_min, ref_max: reference returns; looked up in the D4RL table when score_reference is "d4rl".
        name: the spec it was loaded from, for messages.
    """

    def __init__(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        episode_lengths: Sequence[int] | np.ndarray,
        terminated: Sequence[bool] | np.ndarray,
        truncated: Sequence[bool] | np.ndarray,
        *,
        env_id: str,
        score_reference: str = "d4rl",
        ref_min: float | None = None,
        ref_max: float | None = None,
        name: str = "",
    ) -> None:
        self.name = name or env_id
        self.observations = np.ascontiguousarray(observations, dtype=np.float32)  # (N, obs)
        self.actions = np.ascontiguousarray(actions, dtype=np.float32)  # (N, act)
        self.rewards = np.ascontiguousarray(rewards, dtype=np.float32)  # (N,)
        self._episode_lengths = np.asarray(episode_lengths, dtype=np.int64)  # (E,)
        self._terminated = np.asarray(terminated, dtype=bool)  # (E,)
        self._truncated = np.asarray(truncated, dtype=bool)  # (E,)
        self._check_shapes()
        for key in ("observations", "actions", "rewards"):
            check_finite(key, getattr(self, key), self.name)

        if score_reference not in SCORE_REFERENCES:
            raise ValueError(f"unknown score_reference {score_reference!r}: use one of {list(SCORE_REFERENCES)}")
        self.env_id = env_id
        self.score_reference = score_reference
        self.ref_min, self.ref_max = reference_for(env_id, score_reference, ref_min, ref_max)

        lengths = self._episode_lengths
        self.episode_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (E,)
        self.episode_of_step = np.repeat(np.arange(len(lengths)), lengths)  # (N,)
        self.timesteps = np.arange(self.num_transitions) - np.repeat(self.episode_starts, lengths)  # (N,)
        # Returns-to-go without a loop: rtg_t = C[end-1] - C[t-1], with C the float64 cumsum of all rewards.
        csum = np.cumsum(self.rewards, dtype=np.float64)
        ends = self.episode_starts + lengths
        self.rtg = (np.repeat(csum[ends - 1], lengths) - csum + self.rewards).astype(np.float32)  # (N,)
        self.episode_returns = np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts)  # (E,)
        self.state_mean = self.observations.mean(axis=0, dtype=np.float64).astype(np.float32)  # (obs,)
        self.state_std = (self.observations.std(axis=0, dtype=np.float64) + 1e-6).astype(np.float32)  # (obs,)

        self.episodes = [
            Episode(
                self.observations[s:e],
                self.actions[s:e],
                self.rewards[s:e],
                self.rtg[s:e],
                bool(te),
                bool(tr),
            )
            for s, e, te, tr in zip(self.episode_starts, ends, self._terminated, self._truncated, strict=True)
        ]

    def _check_shapes(self) -> None:
        obs, act, rew, lengths = self.observations, self.actions, self.rewards, self._episode_lengths
        if obs.ndim != 2 or act.ndim != 2 or rew.ndim != 1:
            raise ValueError(
                f"{self.name}: expected observations (N, obs), actions (N, act), rewards (N,), got "
                f"{obs.shape}, {act.shape}, {rew.shape}"
            )
        if not len(obs) == len(act) == len(rew):
            raise ValueError(
                f"{self.name}: observations has {len(obs)} steps, actions {len(act)}, rewards {len(rew)}; "
                "they must be equal"
            )
        if len(lengths) == 0 or lengths.min() < 1 or lengths.sum() != len(rew):
            raise ValueError(
                f"{self.name}: episode_lengths must be >= 1 and sum to the {len(rew)} steps, got "
                f"{len(lengths)} episodes summing to {int(lengths.sum())} (min {lengths.min(initial=0)})"
            )
        if self._terminated.shape != lengths.shape or self._truncated.shape != lengths.shape:
            raise ValueError(
                f"{self.name}: terminated {self._terminated.shape} and truncated {self._truncated.shape} "
                f"must have one flag per episode, shape {lengths.shape}"
            )

    # --- summary -----------------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_transitions(self) -> int:
        return int(len(self.rewards))

    @property
    def num_episodes(self) -> int:
        return int(len(self._episode_lengths))

    @property
    def episode_lengths(self) -> np.ndarray:
        """(E,) int64."""
        return self._episode_lengths

    @property
    def episode_terminated(self) -> np.ndarray:
        """(E,) bool."""
        return self._terminated

    @property
    def episode_truncated(self) -> np.ndarray:
        """(E,) bool."""
        return self._truncated

    def info(self) -> StoreInfo:
        """The env, the score reference and the best episode return, for evaluation."""
        return StoreInfo(self.env_id, self.score_reference, self.ref_min, self.ref_max,
                         float(self.episode_returns.max()))  # fmt: skip

    def normalize_score(self, returns: Sequence[float] | np.ndarray) -> np.ndarray:
        """Scores on the 0-100 scale with this store's reference (NaN if it is "none")."""
        return score_with_reference(returns, self.ref_min, self.ref_max, self.score_reference)

    def fingerprint(self) -> str:
        """SHA-256 (hex, 16 chars) of the data itself: observations, actions, rewards, episode bounds and end flags.

        Two stores have the same fingerprint exactly when they hold the same episodes, whatever file or id they
        came from; a sweep uses it to notice that a dataset was rebuilt under the same name.
        """
        h = hashlib.sha256()
        for a in (self.observations, self.actions, self.rewards, self._episode_lengths, self._terminated,
                  self._truncated):  # fmt: skip
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, float | int | str]:
        """Counts, return statistics and the content fingerprint, JSON-ready."""
        r = self.episode_returns
        return {
            "name": self.name,
            "env_id": self.env_id,
            "episodes": self.num_episodes,
            "transitions": self.num_transitions,
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
            "score_reference": self.score_reference,
            "fingerprint": self.fingerprint(),
        }

    def __repr__(self) -> str:
        return (
            f"TrajectoryStore({self.name!r}, env_id={self.env_id!r}, episodes={self.num_episodes}, "
            f"transitions={self.num_transitions}, score_reference={self.score_reference!r})"
        )

    # --- samplers ----------------------------------------------------------------------------------------
    def _choose_episodes(self, batch_size: int, rng: np.random.Generator, weighting: str) -> np.ndarray:
        """(B,) episode indices, in proportion to length (DT) or uniformly."""
        if weighting == "length":
            return self.episode_of_step[rng.integers(0, self.num_transitions, size=batch_size)]
        if weighting == "uniform":
            return rng.integers(0, self.num_episodes, size=batch_size)
        raise ValueError(f"unknown weighting {weighting!r}: use 'length' or 'uniform'")

    def _gather(self, ep: np.ndarray, rel: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Batch at within-episode indices ``rel`` (B, K) of episodes ``ep`` (B,); zeros where ~mask."""
        rel = np.where(mask, rel, 0)
        flat = self.episode_starts[ep][:, None] + rel  # (B, K)
        pad = ~mask
        batch = {
            "states": self.observations[flat],  # (B, K, obs)
            "actions": self.actions[flat],  # (B, K, act)
            "rewards": self.rewards[flat],  # (B, K)
            "rtg": self.rtg[flat],  # (B, K)
        }
        for value in batch.values():
            value[pad] = 0.0
        batch["timesteps"] = rel.astype(np.int64)
        batch["mask"] = mask
        return batch

    @staticmethod
    def _check_sampler_args(batch_size: int, length: int, rng: np.random.Generator, start: str) -> None:
        if batch_size < 1 or length < 1:
            raise ValueError(f"batch_size and the window length must be >= 1, got {batch_size} and {length}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng)}")
        if start not in ("random", "episode"):
            raise ValueError(f"unknown start {start!r}: use 'random' or 'episode'")

    def sample_windows(
        self,
        batch_size: int,
        K: int,
        rng: np.random.Generator,
        start: str = "random",
        weighting: str = "length",
    ) -> dict[str, np.ndarray]:
        """Decision-Transformer windows of K steps, LEFT-padded (kzl/decision-transformer gym/experiment.py).

        start="random": an episode in proportion to its length, a start step s uniform in [0, T), the window
        is steps s .. min(s+K, T)-1 placed at the right end. start="episode": every window is the first
        min(K, T) steps of its episode, placed at the right end. Padding is zero, timestep 0 and mask False.

        Returns the ``BATCH_KEYS`` dict: states (B,K,obs), actions (B,K,act), rewards, rtg (B,K) f32 (raw,
        unnormalised), timesteps (B,K) i64 (absolute step in the episode), mask (B,K) bool.
        """
        self._check_sampler_args(batch_size, K, rng, start)
        ep = self._choose_episodes(batch_size, rng, weighting)
        lengths = self._episode_lengths[ep]
        if start == "random":
            s = np.floor(rng.random(batch_size) * lengths).astype(np.int64)
        else:
            s = np.zeros(batch_size, dtype=np.int64)
        pad = K - np.minimum(K, lengths - s)  # (B,)
        j = np.arange(K)[None, :]
        return self._gather(ep, s[:, None] + j - pad[:, None], j >= pad[:, None])

    def sample_segments(
        self,
        batch_size: int,
        max_len: int,
        rng: np.random.Generator,
        start: str = "episode",
        weighting: str = "length",
    ) -> dict[str, np.ndarray]:
        """Whole episodes or segments of up to ``max_len`` steps, RIGHT-padded, for long-context training.

        start="episode": the first min(max_len, T) steps. start="random": a start s uniform in
        [0, max(T - max_len, 0)], so the segment is min(max_len, T) steps long. Episodes are drawn in
        proportion to length (or uniformly). Same keys, dtypes and padding as ``sample_windows``; shapes
        (B, max_len).
        """
        self._check_sampler_args(batch_size, max_len, rng, start)
        ep = self._choose_episodes(batch_size, rng, weighting)
        lengths = self._episode_lengths[ep]
        if start == "random":
            s = np.floor(rng.random(batch_size) * (np.maximum(lengths - max_len, 0) + 1)).astype(np.int64)
        else:
            s = np.zeros(batch_size, dtype=np.int64)
        j = np.arange(max_len)[None, :]
        return self._gather(ep, s[:, None] + j, j < np.minimum(max_len, lengths - s)[:, None])

    def sample_burn_in(
        self, batch_size: int, K: int, burn_in: int, rng: np.random.Generator, weighting: str = "length"
    ) -> dict[str, np.ndarray]:
        """Windows of K steps each preceded by up to ``burn_in`` earlier steps: shapes (B, burn_in + K).

        The window start s is uniform in [0, T) of an episode drawn in proportion to its length (as
        ``sample_windows(start="random")``); the sequence is steps s - burn_in .. s + K - 1. Steps before the episode
        start are left padding, steps past its end right padding (zeros, mask False). R2D2 (Kapturowski et al. 2019,
        §3) runs the recurrence over the burn-in prefix without gradient.
        """
        self._check_sampler_args(batch_size, K, rng, "random")
        if burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}")
        ep = self._choose_episodes(batch_size, rng, weighting)
        lengths = self._episode_lengths[ep]
        s = np.floor(rng.random(batch_size) * lengths).astype(np.int64)  # (B,) window start
        rel = s[:, None] - burn_in + np.arange(burn_in + K)[None, :]  # (B, burn_in + K) step within the episode
        return self._gather(ep, rel, (rel >= 0) & (rel < lengths[:, None]))
