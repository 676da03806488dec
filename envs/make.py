"""Environment factory: Gymnasium MuJoCo v5 locomotion envs by shorthand, or any registered Gymnasium id.

>>> resolve_env_id("hopper"), resolve_env_id("Walker2d-v5")
('Hopper-v5', 'Walker2d-v5')
>>> env = make_env("halfcheetah", seed=0)
>>> env.observation_space.shape, env.action_space.shape, env.spec.max_episode_steps
((17,), (6,), 1000)
>>> env.close()
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

from envs.scores import ENV_ALIASES

#: The three D4RL locomotion tasks, by D4RL's names, as the Gymnasium MuJoCo v5 ids we collect and evaluate on.
D4RL_ENV_IDS: dict[str, str] = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}

#: Shorthands accepted wherever an env id is (envs.scores.ENV_ALIASES), mapped to the v5 ids.
ENV_SHORTHANDS: dict[str, str] = {alias: D4RL_ENV_IDS[key] for alias, key in ENV_ALIASES.items()}

#: Episode cap used by D4RL and by Gymnasium's TimeLimit for these envs.
DEFAULT_MAX_EPISODE_STEPS = 1000


def resolve_env_id(env_id: str) -> str:
    """Map a shorthand ("hopper") to its Gymnasium id; pass registered ids through; ValueError otherwise."""
    key = env_id.strip().lower()
    if key in ENV_SHORTHANDS:
        return ENV_SHORTHANDS[key]
    if env_id in gym.registry:
        return env_id
    raise ValueError(
        f"unknown environment {env_id!r}: use a shorthand {sorted(set(ENV_SHORTHANDS))} or a registered "
        "Gymnasium id such as 'Hopper-v5' (see gymnasium.pprint_registry())."
    )


@contextlib.contextmanager
def _quiet_mujoco_deprecation() -> Iterator[None]:
    """Drop MuJoCo's 'settotalmass is deprecated' compile warning (HalfCheetah-v5 XML under mujoco>=3.3), which it
    prints to stderr and appends to ./MUJOCO_LOG.TXT on every env creation; other warnings go to ``warnings``."""
    try:
        import mujoco
    except ImportError:  # not a MuJoCo env setup: nothing to silence
        yield
        return
    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def make_env(
    env_id: str, seed: int | None = None, max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS, **kwargs: Any
) -> gym.Env:
    """Create one environment with a TimeLimit of ``max_episode_steps``.

    Args:
        env_id: a shorthand ("hopper", "halfcheetah", "walker2d") or a Gymnasium id.
        seed: if given, the env is reset once with it (seeding its RNG) and its action space is seeded.
        max_episode_steps: TimeLimit cap (1000, as in D4RL).
        **kwargs: forwarded to ``gymnasium.make``.
    """
    with _quiet_mujoco_deprecation():
        env = gym.make(resolve_env_id(env_id), max_episode_steps=max_episode_steps, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@functools.lru_cache(maxsize=64)
def env_dims(env_id: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(observation shape, action shape) of an env, cached; ValueError if the spaces are not flat Boxes."""
    env = make_env(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        for what, space in (("observation", obs_space), ("action", act_space)):
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"env {env_id!r} has a {what} space {space}: only flat Box spaces are supported")
        return tuple(obs_space.shape), tuple(act_space.shape)
    finally:
        env.close()
