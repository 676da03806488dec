"""envs.collect.save_rollouts: an evaluation written as a Minari dataset and read back by load_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envs import evaluate, load_dataset
from envs.collect import save_rollouts

MAX_STEPS = 40  # strong actions make Hopper fall before this; weaker episodes reach it (truncated)


class Swinging:
    """Deterministic: a strong swing in even episodes (falls), a weak one in odd episodes (times out)."""

    def reset(self, n_envs: int) -> None:
        self.t = np.zeros(n_envs, dtype=np.int64)
        self.episode = np.full(n_envs, -1)
        self.calls = 0

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.t[done] = 0
        self.episode[done] += 1
        scale = np.where(self.episode % 2 == 0, 1.0, 0.2)[:, None]  # (n_envs, 1)
        actions = scale * np.sin(0.7 * self.t[:, None] + np.arange(3))  # (n_envs, 3)
        self.t += 1
        return actions


def test_saved_rollouts_read_back_with_their_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    meta = {"policy": "mingru", "target_return": 3600.0, "checkpoint": "runs/x/checkpoints/step_0000010"}
    saved = save_rollouts(Swinging(), "hopper", "minrnn/hopper/eval-test-v0", 3, seed=5, max_steps=MAX_STEPS,
                          metadata=meta)  # fmt: skip
    eps = saved.episodes
    assert [ep.seed for ep in eps] == [5, 6, 7]
    assert any(ep.terminated for ep in eps) and any(ep.truncated for ep in eps)

    store = load_dataset("minari:minrnn/hopper/eval-test-v0")
    assert store.env_id == "Hopper-v5" and store.score_reference == "d4rl"
    assert [len(e.rewards) for e in store.episodes] == [len(ep) for ep in eps]
    for got, want in zip(store.episodes, eps, strict=True):
        np.testing.assert_array_equal(got.observations, want.observations[:-1])  # Minari keeps T+1; we drop the last
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.rewards, want.rewards)
        assert (got.terminated, got.truncated) == (want.terminated, want.truncated)

    import minari

    stored = minari.load_dataset("minrnn/hopper/eval-test-v0").storage.metadata
    assert {k: stored[k] for k in meta} == meta
    assert stored["recipe"] == {"algorithm": "evaluation", "episodes": 3, "seed": 5, "max_steps": MAX_STEPS}
    assert stored["return_mean"] == pytest.approx(saved.returns.mean(), rel=1e-6)

    # The same seeds as evaluate: a deterministic policy gets evaluate's per-episode returns.
    ev = evaluate(Swinging(), "hopper", n_episodes=3, n_envs=1, seed=5, vector="sync", max_steps=MAX_STEPS)
    np.testing.assert_allclose(saved.returns, ev.returns, rtol=1e-5)
    np.testing.assert_array_equal([len(ep) for ep in eps], ev.lengths)


def test_existing_dataset_is_refused_before_rolling_out_unless_overwrite(tmp_path: Path) -> None:
    first = save_rollouts(Swinging(), "hopper", "minrnn/hopper/again-v0", 1, max_steps=5, root=tmp_path)
    policy = Swinging()
    with pytest.raises(FileExistsError, match=r"dataset minrnn/hopper/again-v0 already exists at .*; pass --overwrite"):
        save_rollouts(policy, "hopper", "minrnn/hopper/again-v0", 1, max_steps=5, root=tmp_path)
    assert not hasattr(policy, "calls")  # refused before reset/act: no minutes of rollouts wasted
    again = save_rollouts(policy, "hopper", "minrnn/hopper/again-v0", 2, max_steps=5, root=tmp_path, overwrite=True)
    assert again.path == first.path and len(again.episodes) == 2


def test_bad_dataset_name_says_the_form(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid dataset name 'my eval': Minari ids look like 'namespace/name-v0'"):
        save_rollouts(Swinging(), "hopper", "my eval", 1, root=tmp_path)


def test_recorded_actions_are_the_clipped_ones_the_env_executed() -> None:
    from envs import make_env
    from envs.collect import play_episodes

    class TooStrong(Swinging):
        def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
            return 50.0 * super().act(obs, reward, done)

    env = make_env("hopper", max_episode_steps=6)
    with pytest.warns(UserWarning, match="outside the action space") as record:
        (ep,) = play_episodes(TooStrong(), env, 1, seed=0)
    env.close()
    assert sum("outside the action space" in str(w.message) for w in record) == 1
    assert np.abs(ep.actions).max() == 1.0 and len(ep) == 6
