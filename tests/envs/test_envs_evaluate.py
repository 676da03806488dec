"""Vectorised evaluation equals a plain single-env loop with the same seeds; EvalResult; policy errors."""

import json
import warnings

import numpy as np
import pytest

from envs import EvalResult, evaluate, make_env, normalized_score
from envs.make import resolve_env_id

MAX_STEPS = 60  # short episodes keep the test fast; some still terminate (fall) before the limit


def scripted_action(obs: np.ndarray, t: int) -> np.ndarray:
    """Deterministic, depends on the state and on the step within the episode (so the policy has state)."""
    return np.clip(0.5 * np.sin(20.0 * float(obs.sum()) + 0.3 * t + np.arange(3)), -1.0, 1.0)


class ScriptedPolicy:
    """Per-slot step counters, reset where ``done``; records what it was given."""

    def reset(self, n_envs: int) -> None:
        self.t = np.zeros(n_envs, dtype=np.int64)
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.calls.append((reward.copy(), done.copy()))
        self.t[done] = 0
        actions = np.stack([scripted_action(o, int(t)) for o, t in zip(obs, self.t, strict=True)])
        self.t += 1
        return actions


def single_env_loop(env_id: str, n_episodes: int, seed: int) -> tuple[list[float], list[int]]:
    env = make_env(env_id, max_episode_steps=MAX_STEPS)
    returns, lengths = [], []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        total, t, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(scripted_action(obs, t))
            total += float(reward)
            t += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(t)
    env.close()
    return returns, lengths


@pytest.fixture(scope="module")
def reference() -> tuple[list[float], list[int]]:
    return single_env_loop("Hopper-v5", n_episodes=5, seed=3)


@pytest.mark.parametrize(("n_envs", "vector"), [(1, "sync"), (3, "sync"), (3, "async"), (10, "auto")])
def test_vectorised_equals_single_env_loop(reference, n_envs: int, vector: str) -> None:
    ref_returns, ref_lengths = reference
    assert len(set(ref_lengths)) > 1 and min(ref_lengths) < MAX_STEPS  # episodes end at different times
    res = evaluate(ScriptedPolicy(), "hopper", n_episodes=5, n_envs=n_envs, seed=3, vector=vector, max_steps=MAX_STEPS)
    assert res.lengths.tolist() == ref_lengths
    np.testing.assert_array_equal(res.returns, ref_returns)  # bit-identical
    assert res.n_envs == min(n_envs, 5)


def test_policy_sees_done_and_reward_protocol() -> None:
    policy = ScriptedPolicy()
    res = evaluate(policy, "hopper", n_episodes=4, n_envs=2, seed=0, vector="sync", max_steps=MAX_STEPS)
    reward0, done0 = policy.calls[0]
    assert done0.tolist() == [True, True] and reward0.tolist() == [0.0, 0.0]
    # every new episode starts with reward 0.0 and done True; the policy saw N + (idle restarts) episode starts
    starts = sum(int(d.sum()) for _, d in policy.calls)
    assert starts >= 4
    for r, d in policy.calls:
        assert (r[d] == 0.0).all()
    assert len(policy.calls) >= max(res.lengths)


def test_eval_result_fields() -> None:
    res = evaluate(ScriptedPolicy(), "Hopper-v5", n_episodes=3, n_envs=3, seed=0, vector="sync", max_steps=20)
    assert isinstance(res, EvalResult) and res.env_id == "Hopper-v5" and res.score_reference == "d4rl"
    assert res.returns.shape == res.lengths.shape == res.normalized_scores.shape == (3,)
    np.testing.assert_allclose(res.normalized_scores, normalized_score("hopper", res.returns))
    assert res.return_mean == pytest.approx(res.returns.mean())
    assert res.normalized_std == pytest.approx(res.normalized_scores.std())
    assert res.wall_time_s > 0
    d = json.loads(json.dumps(res.to_dict()))
    assert d["returns"] == res.returns.tolist() and d["score_reference"] == "d4rl" and d["seed"] == 0


def test_minari_and_none_references() -> None:
    res = evaluate(
        ScriptedPolicy(),
        "hopper",
        n_episodes=2,
        n_envs=2,
        vector="sync",
        max_steps=10,
        score_reference="minari",
        ref_min=0.0,
        ref_max=10.0,
    )
    np.testing.assert_allclose(res.normalized_scores, 10.0 * res.returns)
    res = evaluate(
        ScriptedPolicy(), "hopper", n_episodes=1, n_envs=1, vector="sync", max_steps=5, score_reference="none"
    )
    assert np.isnan(res.normalized_scores).all() and res.score_reference == "none"


class BadShapePolicy(ScriptedPolicy):
    def act(self, obs, reward, done):
        return np.zeros((len(obs), 2))


class NanPolicy(ScriptedPolicy):
    def act(self, obs, reward, done):
        a = np.zeros((len(obs), 3))
        a[1, 0] = np.nan
        return a


def test_policy_errors() -> None:
    with pytest.raises(ValueError, match=r"policy.act returned actions of shape \(2, 2\), expected .* \(2, 3\)"):
        evaluate(BadShapePolicy(), "hopper", n_episodes=2, n_envs=2, vector="sync", max_steps=5)
    with pytest.raises(ValueError, match=r"NaN or inf actions, first in slot 1"):
        evaluate(NanPolicy(), "hopper", n_episodes=2, n_envs=2, vector="sync", max_steps=5)


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown vector mode 'threads'"):
        evaluate(ScriptedPolicy(), "hopper", n_episodes=1, vector="threads")
    with pytest.raises(ValueError, match=r"must be >= 1, got 0"):
        evaluate(ScriptedPolicy(), "hopper", n_episodes=0)
    with pytest.raises(ValueError, match=r"no D4RL reference score for env 'Ant-v5'"):
        evaluate(ScriptedPolicy(), "Ant-v5", n_episodes=1, score_reference="d4rl")


def test_make_env_shorthands() -> None:
    assert resolve_env_id("walker2d") == "Walker2d-v5" and resolve_env_id("HalfCheetah-v5") == "HalfCheetah-v5"
    env = make_env("hopper", seed=1)
    assert env.spec.max_episode_steps == 1000 and env.observation_space.shape == (11,)
    env.close()
    with pytest.raises(ValueError, match=r"unknown environment 'hoper'.*'hopper'"):
        make_env("hoper")


class _Constant:
    """Always the same action in every slot."""

    def __init__(self, value: float) -> None:
        self.value = value

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        return np.full((len(obs), 3), self.value)


def test_actions_outside_the_bounds_are_clipped_with_a_warning() -> None:
    """50 where Hopper's bound is 1: a warning naming the values and the fix, and exactly the returns of 1.0."""
    kwargs = {"n_episodes": 2, "n_envs": 2, "seed": 0, "vector": "sync", "max_steps": 8}
    with pytest.warns(
        UserWarning,
        match=r"actions outside the action space \[-1, 1\] \(slot 0: \[50.0, 50.0, 50.0\]\);"
        r" they are clipped to the bounds before stepping. Scale the policy's output",
    ) as record:
        over = evaluate(_Constant(50.0), "hopper", **kwargs)
    assert sum("outside the action space" in str(w.message) for w in record) == 1  # once, not once per step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in bounds: silent
        at_bound = evaluate(_Constant(1.0), "hopper", **kwargs)
    np.testing.assert_array_equal(over.returns, at_bound.returns)
