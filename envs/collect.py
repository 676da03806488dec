"""Roll a policy out and write the episodes as a Minari dataset.

Two ways in: `rollout` runs a fixed budget of transitions (dataset recipes), `save_rollouts` runs N whole episodes
with `evaluate`'s seeds (episode k resets with seed + k) and records them, so an evaluation can be kept as data.

Agent-agnostic: a policy is any object with `reset(n_envs)` and `act(obs, reward, done) -> actions`, the same
protocol `envs.evaluate` uses. The recipes that choose which policy and how many steps (medium, medium-replay,
expert, ...) live in `agents/behaviour/recipes.py`.

Datasets we make live in our own namespace, `minrnn/<env>/<level>-v0`, so they never collide with the official
`mujoco/...` ids, and carry D4RL's reference scores (REF_MIN_SCORE / REF_MAX_SCORE in d4rl/infos.py) with
`score_reference: "d4rl"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.datasets import minari_root
from envs.evaluate import _checked_actions
from envs.make import DEFAULT_MAX_EPISODE_STEPS, make_env
from envs.scores import d4rl_env_key, d4rl_reference

NAMESPACE = "minrnn"


@dataclass
class CollectedEpisode:
    """One episode: observations (T+1, obs) including the last one, actions (T, act), rewards (T,), and whether it
    ended by termination or truncation (time limit, or the collection budget running out)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    seed: int | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)

    @classmethod
    def from_lists(
        cls, observations: list, actions: list, rewards: list, terminated: Any, truncated: Any, seed: int | None
    ) -> CollectedEpisode:
        """An episode from the per-step lists a rollout appends to (float32 arrays; numpy flags become bools)."""
        arrays = (np.asarray(x, np.float32) for x in (observations, actions, rewards))
        return cls(*arrays, bool(terminated), bool(truncated), seed)


def dataset_id(env: str, level: str, version: int = 0) -> str:
    """Our Minari id for an env and a recipe level, e.g. ("Hopper-v5", "medium") -> "minrnn/hopper/medium-v0"."""
    key = d4rl_env_key(env)
    if key is None:
        raise ValueError(f"no dataset recipes for env {env!r}: recipes exist for halfcheetah, hopper and walker2d")
    return f"{NAMESPACE}/{key}/{level}-v{version}"


def rollout(
    policy: Any, env_id: str, n_transitions: int, seed: int, max_episode_steps: int = 1000
) -> list[CollectedEpisode]:
    """Run `policy` in one environment until exactly `n_transitions` steps were taken.

    Episode k is reset with seed `seed + k`. The last episode is cut at the budget and marked truncated, as D4RL
    marks its timeouts. A policy that samples actions must draw them from its own seeded generator for the
    collection to be reproducible.
    """
    if n_transitions <= 0:
        raise ValueError(f"n_transitions must be positive, got {n_transitions}")
    env = make_env(env_id, max_episode_steps=max_episode_steps)
    episodes: list[CollectedEpisode] = []
    steps, k = 0, 0
    policy.reset(1)
    while steps < n_transitions:
        obs, _ = env.reset(seed=seed + k)
        obs_list, act_list, rew_list = [obs], [], []
        reward, done, term, trunc = 0.0, True, False, False
        while True:
            action = np.asarray(policy.act(obs[None], np.array([reward]), np.array([done])))[0]
            obs, reward, term, trunc, _ = env.step(action)
            done = False
            obs_list.append(obs)
            act_list.append(action)
            rew_list.append(reward)
            steps += 1
            if term or trunc or steps >= n_transitions:
                break
        episodes.append(CollectedEpisode.from_lists(obs_list, act_list, rew_list, term, not term, seed + k))
        k += 1
    env.close()
    return episodes


@contextmanager
def _minari_root(root: str | Path | None) -> Iterator[None]:
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def write_dataset(
    dataset_id: str,
    episodes: list[CollectedEpisode],
    env_id: str,
    recipe: dict,
    root: str | Path | None = None,
    overwrite: bool = False,
    description: str = "",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `episodes` as the Minari dataset `dataset_id` under `root` (default: Minari's own root).

    The dataset carries D4RL's ref_min/ref_max for the env, `score_reference: "d4rl"`, and `recipe`, a JSON-able
    dict describing how it was made (algorithm, steps, checkpoint, seed, ...). `metadata` (JSON-able) is added to
    the dataset's metadata as is, e.g. {"policy": ..., "target_return": ..., "checkpoint": ...}. An existing
    dataset is kept unless `overwrite`. Returns the dataset's directory.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    with _minari_root(root):
        path = minari_root() / dataset_id
        if path.exists():
            _refuse_existing(dataset_id, path, overwrite)
            shutil.rmtree(path)
        buffers = [
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=list(ep.observations),
                actions=list(ep.actions),
                rewards=ep.rewards.tolist(),
                terminations=[False] * (len(ep) - 1) + [ep.terminated],
                truncations=[False] * (len(ep) - 1) + [ep.truncated],
            )
            for i, ep in enumerate(episodes)
        ]
        ref_min, ref_max = d4rl_reference(env_id)
        spec = make_env(env_id).spec
        with warnings.catch_warnings():  # minari nags about a missing code link and author e-mail
            warnings.filterwarnings("ignore", message=r"`(code_permalink|author_email)` is set to None")
            ds = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=spec,
                eval_env=spec,
                algorithm_name=recipe.get("algorithm", "unknown"),
                author={"minrnn-rl"},
                ref_min_score=ref_min,
                ref_max_score=ref_max,
                description=description or json.dumps(recipe),
                requirements=["mujoco>=3"],
            )
        returns = np.array([ep.rewards.sum() for ep in episodes])
        ds.storage.update_metadata(
            {
                "score_reference": "d4rl",
                "recipe": recipe,
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                **(metadata or {}),
            }
        )
        return path


def _refuse_existing(dataset_id: str, path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"dataset {dataset_id} already exists at {path}; pass --overwrite to replace it, or choose another --name"
        )


def play_episodes(
    policy: Any,
    env: Any,
    n_episodes: int,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> list[CollectedEpisode]:
    """Run `n_episodes` whole episodes of `policy` in the single env `env`; episode k resets with seed `seed + k`.

    The seeds and the policy protocol are those of `envs.evaluate` (reward 0 and done=True at an episode's first
    observation), so a deterministic policy gets evaluate's per-episode returns. Actions go through evaluate's
    check: clipped to the action space with a warning, and what is recorded is what the env executed.
    `on_step(k, t)` is called after the reset (t = 0) and after each step t = 1..T of episode k, e.g. to render.
    """
    space = env.action_space
    policy.reset(1)
    episodes, warned = [], False  # one out-of-bounds warning per call
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        obs_list, act_list, rew_list = [obs], [], []
        reward, done, term, trunc = 0.0, True, False, False
        if on_step is not None:
            on_step(k, 0)
        while not (term or trunc):
            raw = policy.act(obs[None], np.array([reward]), np.array([done]))
            checked, outside = _checked_actions(raw, (1, *space.shape), space.low, space.high, not warned)
            warned, action = warned or outside, checked[0].astype(space.dtype)
            obs, reward, term, trunc, _ = env.step(action)
            done = False
            obs_list.append(obs)
            act_list.append(action)
            rew_list.append(float(reward))
            if on_step is not None:
                on_step(k, len(act_list))
        episodes.append(CollectedEpisode.from_lists(obs_list, act_list, rew_list, term, trunc and not term, seed + k))
    return episodes


@dataclass(frozen=True)
class SavedRollouts:
    """What `save_rollouts` wrote: the dataset's folder, its episodes, and the wall time of rolling + writing."""

    path: Path
    episodes: list[CollectedEpisode]
    rollout_s: float  # seconds spent acting and stepping
    write_s: float  # seconds spent writing the Minari dataset

    @property
    def returns(self) -> np.ndarray:
        """(N,) float64 undiscounted return of each episode, in episode order."""
        return np.array([ep.rewards.sum(dtype=np.float64) for ep in self.episodes])


def save_rollouts(
    policy: Any,
    env_id: str,
    dataset_id: str,
    n_episodes: int,
    seed: int = 0,
    max_steps: int = DEFAULT_MAX_EPISODE_STEPS,
    metadata: dict[str, Any] | None = None,
    root: str | Path | None = None,
    overwrite: bool = False,
) -> SavedRollouts:
    """Evaluate `policy` for `n_episodes` episodes (seeds `seed + k`) and write them as the Minari dataset
    `dataset_id`, readable with ``load_dataset("minari:<dataset_id>")``.

    Args:
        metadata: JSON-able facts stored in the dataset's metadata, e.g. {"policy": "mingru", "target_return":
            3600, "checkpoint": "runs/x/checkpoints/step_0001000"}.
        root: Minari root (default $MINARI_DATASETS_PATH or ~/.minari/datasets).
        overwrite: replace an existing dataset; without it an existing one is refused before any rollout.

    The recipe stored with the dataset says {"algorithm": "evaluation", "episodes", "seed", "max_steps"}.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*-v\d+", dataset_id):
        raise ValueError(
            f"invalid dataset name {dataset_id!r}: Minari ids look like 'namespace/name-v0', e.g. "
            f"'{NAMESPACE}/hopper/mingru-eval-v0'"
        )
    with _minari_root(root):
        _refuse_existing(dataset_id, minari_root() / dataset_id, overwrite)  # fail before minutes of rollouts
    t0 = time.perf_counter()
    env = make_env(env_id, max_episode_steps=max_steps)
    try:
        episodes = play_episodes(policy, env, n_episodes, seed)
    finally:
        env.close()
    t1 = time.perf_counter()
    recipe = {"algorithm": "evaluation", "episodes": n_episodes, "seed": seed, "max_steps": max_steps}
    path = write_dataset(dataset_id, episodes, env_id, recipe, root=root, overwrite=overwrite, metadata=metadata)
    return SavedRollouts(path, episodes, rollout_s=t1 - t0, write_s=time.perf_counter() - t1)


__all__ = [
    "NAMESPACE",
    "CollectedEpisode",
    "SavedRollouts",
    "dataset_id",
    "play_episodes",
    "rollout",
    "save_rollouts",
    "write_dataset",
]
