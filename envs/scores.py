"""Normalised scores on the 0-100 scale, with the D4RL reference table (Fu et al. 2020; d4rl/infos.py).

A score always travels with the name of the reference it used: ``"d4rl"`` (the table below), ``"minari"``
(a dataset's own ``ref_min_score``/``ref_max_score`` metadata) or ``"none"`` (no reference; scores NaN).

>>> float(normalized_score("hopper", [3234.3])[0])
100.0
>>> round(float(normalized_score("Hopper-v5", [1617.0])[0]), 2)
50.31
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: D4RL reference returns, (REF_MIN, REF_MAX): random and expert policies, from D4RL's d4rl/infos.py
#: (REF_MIN_SCORE, REF_MAX_SCORE).
D4RL_REF: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}

#: DT's evaluation targets (returns-to-go at t=0) per D4RL env, the higher first (kzl/decision-transformer
#: gym/experiment.py, ``env_targets``).
DT_TARGETS: dict[str, tuple[float, ...]] = {
    "hopper": (3600.0, 1800.0),
    "halfcheetah": (12000.0, 6000.0),
    "walker2d": (5000.0, 2500.0),
}

#: D4RL's dataset levels for the locomotion tasks; our dataset ids are minrnn/<env>/<level>-v0.
D4RL_LEVELS: tuple[str, ...] = ("random", "medium", "medium-replay", "expert", "medium-expert")

#: Reference names a score can carry.
SCORE_REFERENCES: tuple[str, ...] = ("d4rl", "minari", "none")

#: Env names by alias, to D4RL's key: the shorthands the CLI accepts (envs.make.ENV_SHORTHANDS) and the substrings
#: found in Gymnasium ids, D4RL names ("hopper-medium-v2") and Minari ids ("mujoco/walker2d/..."). Longest first
#: where one contains another ("halfcheetah" before "cheetah").
ENV_ALIASES: dict[str, str] = {
    "halfcheetah": "halfcheetah",
    "half_cheetah": "halfcheetah",
    "cheetah": "halfcheetah",
    "hopper": "hopper",
    "walker2d": "walker2d",
    "walker": "walker2d",
}


def d4rl_env_key(env_name: str) -> str | None:
    """The D4RL table key ("halfcheetah", "hopper", "walker2d") for an env or dataset name, or None.

    >>> d4rl_env_key("hopper-medium-v2"), d4rl_env_key("HalfCheetah-v5"), d4rl_env_key("Ant-v5")
    ('hopper', 'halfcheetah', None)
    """
    name = re.sub(r"[^a-z0-9_]", " ", env_name.lower())
    for alias, key in ENV_ALIASES.items():
        if alias in name:
            return key
    return None


def d4rl_reference(env_name: str) -> tuple[float, float]:
    """(REF_MIN, REF_MAX) from the D4RL table; ValueError naming the env and the known keys if absent."""
    key = d4rl_env_key(env_name)
    if key is None:
        raise ValueError(
            f"no D4RL reference score for env {env_name!r}: the D4RL table covers {sorted(D4RL_REF)}. "
            "Use score_reference='minari' with ref_min/ref_max, or score_reference='none'."
        )
    return D4RL_REF[key]


def normalize_with(returns: Sequence[float] | np.ndarray, ref_min: float, ref_max: float) -> np.ndarray:
    """100 * (R - ref_min) / (ref_max - ref_min), as float64 of the same shape as ``returns``.

    >>> normalize_with([0.0, 5.0, 10.0], 0.0, 10.0).tolist()
    [0.0, 50.0, 100.0]
    """
    if not ref_max > ref_min:
        raise ValueError(f"reference scores need ref_max > ref_min, got ref_min={ref_min}, ref_max={ref_max}")
    r = np.asarray(returns, dtype=np.float64)
    return 100.0 * (r - ref_min) / (ref_max - ref_min)


def normalized_score(env_name: str, returns: Sequence[float] | np.ndarray) -> np.ndarray:
    """D4RL-normalised score (0 = random, 100 = expert) for returns on "halfcheetah", "hopper" or "walker2d".

    Accepts shorthands, Gymnasium ids ("Walker2d-v5"), D4RL names ("hopper-medium-v2") and Minari ids.
    d4rl's own ``get_normalized_score`` returns the fraction; this returns 100x that, as the papers report.

    >>> normalized_score("walker2d", [1.629008]).tolist()
    [0.0]
    """
    ref_min, ref_max = d4rl_reference(env_name)
    return normalize_with(returns, ref_min, ref_max)


def reference_for(
    env_name: str, score_reference: str, ref_min: float | None = None, ref_max: float | None = None
) -> tuple[float, float]:
    """(ref_min, ref_max) for a reference name; NaN pair for "none". ValueError on unknown names."""
    if score_reference == "d4rl":
        return d4rl_reference(env_name)
    if score_reference == "minari":
        if ref_min is None or ref_max is None:
            raise ValueError(
                f"score_reference='minari' needs ref_min and ref_max (got {ref_min}, {ref_max}): "
                "pass the dataset's store.ref_min/store.ref_max, or use score_reference='d4rl'."
            )
        return float(ref_min), float(ref_max)
    if score_reference == "none":
        return float("nan"), float("nan")
    raise ValueError(f"unknown score_reference {score_reference!r}: use one of {list(SCORE_REFERENCES)}")


def score_with_reference(
    returns: Sequence[float] | np.ndarray, ref_min: float, ref_max: float, score_reference: str
) -> np.ndarray:
    """Normalised scores for a resolved reference; all NaN when ``score_reference == "none"``."""
    if score_reference == "none":
        return np.full(np.shape(returns), np.nan, dtype=np.float64)
    return normalize_with(returns, ref_min, ref_max)
