"""Shared fixtures: tiny real datasets made from short Hopper-v5 rollouts, written to temporary folders.

- ``hopper_rollouts``: a list of ``Rollout`` (observations (T+1, 11), actions (T, 3), rewards (T,), flags), with at
  least one terminated and one truncated episode (TimeLimit of ``ROLLOUT_MAX_STEPS``).
- ``minari_datasets``: real Minari datasets under a temporary $MINARI_DATASETS_PATH (set for the rest of the
  session): ``TINY_MINARI_ID`` (ours: D4RL reference) and ``TINY_MINARI_REF_ID`` (own ref scores 0/100).
- ``d4rl_file``: a D4RL-layout HDF5 file of the same rollouts plus a 5-step tail with no end flag.
- ``write_d4rl``: a function writing arbitrary arrays as a D4RL-layout HDF5 file in the test's tmp_path.
"""

from __future__ import annotations

import os

# Offscreen rendering for the video tests: MuJoCo picks its GL backend when first imported, which may be in any test.
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

ROLLOUT_MAX_STEPS = 40  # TimeLimit of the fixture rollouts: some episodes terminate (fall), some time out
TINY_MINARI_ID = "minrnn/hopper/tiny-v0"  # our namespace, metadata score_reference="d4rl"
TINY_MINARI_REF_ID = "test/hopper/refs-v0"  # a third-party-style dataset with ref_min_score=0, ref_max_score=100
D4RL_TAIL_STEPS = 5  # unflagged steps appended at the end of the D4RL fixture file


@dataclass(frozen=True)
class Rollout:
    observations: np.ndarray  # (T+1, obs) float64, including the state after the last action
    actions: np.ndarray  # (T, act) float32
    rewards: np.ndarray  # (T,) float64
    terminated: bool
    truncated: bool


@dataclass(frozen=True)
class MinariDatasets:
    root: Path  # the temporary MINARI_DATASETS_PATH
    ours_id: str  # TINY_MINARI_ID
    ref_id: str  # TINY_MINARI_REF_ID
    rollouts: list[Rollout]  # the episodes both datasets hold


@dataclass(frozen=True)
class D4RLFile:
    path: Path  # .../hopper-tiny.hdf5
    arrays: dict[str, np.ndarray]  # exactly what the file holds
    lengths: list[int]  # expected episode lengths, tail included
    terminated: list[bool]
    truncated: list[bool]


def rollout_hopper(n_episodes: int, seed: int, max_steps: int = ROLLOUT_MAX_STEPS) -> list[Rollout]:
    """Episodes of seeded uniform-random actions on Hopper-v5; episode k resets with seed + k."""
    env = gym.make("Hopper-v5", max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        observations, actions, rewards = [obs], [], []
        scale = 1.0 if k % 2 == 0 else 0.2  # strong actions tend to fall early; weak ones reach the time limit
        while True:
            action = (scale * rng.uniform(-1.0, 1.0, size=3)).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            if terminated or truncated:
                break
        out.append(Rollout(np.array(observations), np.array(actions), np.array(rewards), terminated, truncated))
    env.close()
    return out


@pytest.fixture(scope="session")
def hopper_rollouts() -> list[Rollout]:
    rollouts = rollout_hopper(n_episodes=6, seed=0)
    assert any(r.terminated for r in rollouts) and any(r.truncated and not r.terminated for r in rollouts)
    return rollouts


def _write_minari(dataset_id: str, rollouts: list[Rollout], **kwargs: object) -> object:
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [
        EpisodeBuffer(
            id=i,
            observations=list(r.observations),
            actions=list(r.actions),
            rewards=r.rewards.tolist(),
            terminations=[False] * (len(r.rewards) - 1) + [r.terminated],
            truncations=[False] * (len(r.rewards) - 1) + [r.truncated],
        )
        for i, r in enumerate(rollouts)
    ]
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=buffers,
        env=gym.make("Hopper-v5").spec,
        eval_env=gym.make("Hopper-v5").spec,
        algorithm_name="random",
        author="minrnn-rl tests",
        author_email="tests@example.invalid",
        code_permalink="https://example.invalid/minrnn-rl",
        description="tiny test dataset: short random-action Hopper-v5 rollouts",
        **kwargs,
    )


@pytest.fixture(scope="session")
def minari_datasets(
    tmp_path_factory: pytest.TempPathFactory, hopper_rollouts: list[Rollout]
) -> Iterator[MinariDatasets]:
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    ours = _write_minari(TINY_MINARI_ID, hopper_rollouts, ref_min_score=-20.272305, ref_max_score=3234.3)
    ours.storage.update_metadata({"score_reference": "d4rl"})
    _write_minari(TINY_MINARI_REF_ID, hopper_rollouts, ref_min_score=0.0, ref_max_score=100.0)
    yield MinariDatasets(root, TINY_MINARI_ID, TINY_MINARI_REF_ID, hopper_rollouts)
    mp.undo()


def write_d4rl_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


@pytest.fixture(scope="session")
def d4rl_file(tmp_path_factory: pytest.TempPathFactory, hopper_rollouts: list[Rollout]) -> D4RLFile:
    tail = rollout_hopper(n_episodes=1, seed=100, max_steps=D4RL_TAIL_STEPS + 1)[0]
    parts = [(r.observations[:-1], r.actions, r.rewards, r.terminated, r.truncated) for r in hopper_rollouts]
    parts.append(
        (
            tail.observations[:D4RL_TAIL_STEPS],
            tail.actions[:D4RL_TAIL_STEPS],
            tail.rewards[:D4RL_TAIL_STEPS],
            False,
            False,
        )
    )
    flags = [np.zeros(len(p[2]), bool) for p in parts]
    terminals, timeouts = [f.copy() for f in flags], [f.copy() for f in flags]
    for p, te, to in zip(parts, terminals, timeouts, strict=True):
        te[-1], to[-1] = p[3], p[4]
    arrays = {
        "observations": np.concatenate([p[0] for p in parts]).astype(np.float32),
        "actions": np.concatenate([p[1] for p in parts]).astype(np.float32),
        "rewards": np.concatenate([p[2] for p in parts]).astype(np.float32),
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
    }
    next_obs = [r.observations[1:] for r in hopper_rollouts] + [tail.observations[1 : D4RL_TAIL_STEPS + 1]]
    arrays["next_observations"] = np.concatenate(next_obs).astype(np.float32)
    path = write_d4rl_arrays(tmp_path_factory.mktemp("d4rl") / "hopper-tiny.hdf5", arrays)
    return D4RLFile(
        path=path,
        arrays=arrays,
        lengths=[len(p[2]) for p in parts],
        terminated=[bool(p[3]) for p in parts],
        truncated=[bool(p[4]) for p in parts[:-1]] + [True],
    )


@pytest.fixture
def write_d4rl(tmp_path: Path) -> Callable[..., Path]:
    """write_d4rl(arrays, name="hopper-bad.hdf5") -> path of a D4RL-layout file holding exactly ``arrays``."""

    def write(arrays: dict[str, np.ndarray], name: str = "hopper-bad.hdf5") -> Path:
        return write_d4rl_arrays(tmp_path / name, arrays)

    return write
