"""TrajectoryStore: construction, sampler shapes/masks/padding, weighting by length, burn-in windows."""

import numpy as np
import pytest

from envs import TrajectoryStore
from envs.store import BATCH_KEYS

LENGTHS = [3, 10, 1, 6]


def _store() -> TrajectoryStore:
    """Steps numbered 1..N: observation = [n, -n], action = [10 n], reward = n, so every gather is checkable."""
    n = sum(LENGTHS)
    idx = np.arange(1, n + 1, dtype=np.float32)
    return TrajectoryStore(
        np.stack([idx, -idx], 1),
        (10 * idx)[:, None],
        idx,
        LENGTHS,
        terminated=[True, False, True, False],
        truncated=[False, True, False, True],
        env_id="Hopper-v5",
    )


def _check_batch(b: dict, batch: int, k: int) -> None:
    assert list(b) == list(BATCH_KEYS)
    assert b["states"].shape == (batch, k, 2) and b["states"].dtype == np.float32
    assert b["actions"].shape == (batch, k, 1) and b["actions"].dtype == np.float32
    for key in ("rewards", "rtg"):
        assert b[key].shape == (batch, k) and b[key].dtype == np.float32
    assert b["timesteps"].shape == (batch, k) and b["timesteps"].dtype == np.int64
    assert b["mask"].shape == (batch, k) and b["mask"].dtype == bool
    pad = ~b["mask"]
    for key in ("states", "actions", "rewards", "rtg", "timesteps"):
        assert (b[key][pad] == 0).all(), key
    # real steps: consecutive within an episode, states/actions/rewards consistent with the step number
    step = b["rewards"]
    np.testing.assert_array_equal(b["states"][..., 0], step)
    np.testing.assert_array_equal(b["actions"][..., 0], 10 * step)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    for row in range(batch):
        real = step[row][b["mask"][row]]
        assert len(real) >= 1 and (np.diff(real) == 1).all()
        ep = np.searchsorted(np.cumsum(LENGTHS), real[0] - 1, side="right")
        np.testing.assert_array_equal(b["timesteps"][row][b["mask"][row]], real - 1 - starts[ep])
        end = starts[ep] + LENGTHS[ep]  # rtg = sum of step numbers from here to the episode's end
        np.testing.assert_allclose(b["rtg"][row][b["mask"][row]], [sum(range(int(s), end + 1)) for s in real])


def test_basic_attributes() -> None:
    s = _store()
    assert (s.obs_dim, s.act_dim, s.num_transitions, s.num_episodes) == (2, 1, 20, 4)
    assert s.episode_lengths.tolist() == LENGTHS
    assert s.episode_returns.tolist() == [6.0, 85.0, 14.0, 105.0]  # 1+2+3, 4+..+13, 14, 15+..+20
    assert s.episodes[2].rtg.tolist() == [14.0] and len(s.episodes[1]) == 10


def test_fingerprint_follows_content_not_name() -> None:
    s = _store()
    n = s.num_transitions
    same = TrajectoryStore(
        s.observations.copy(), s.actions.copy(), s.rewards.copy(), LENGTHS,
        terminated=[True, False, True, False], truncated=[False, True, False, True], env_id="Hopper-v5", name="other",
    )  # fmt: skip
    assert same.fingerprint() == s.fingerprint() == s.summary()["fingerprint"] and len(s.fingerprint()) == 16
    rewards = s.rewards.copy()
    rewards[7] += 1e-3
    changed = [
        TrajectoryStore(s.observations, s.actions, rewards, LENGTHS, [True, False, True, False],
                        [False, True, False, True], env_id="Hopper-v5"),
        TrajectoryStore(s.observations, s.actions, s.rewards, [3, 10, 2, 5], [True, False, True, False],
                        [False, True, False, True], env_id="Hopper-v5"),  # same steps, other episode bounds
        TrajectoryStore(s.observations, s.actions, s.rewards, LENGTHS, [True, False, True, True],
                        [False, True, False, False], env_id="Hopper-v5"),  # other end flags
    ]  # fmt: skip
    assert n == 20 and len({c.fingerprint() for c in changed} | {s.fingerprint()}) == 4


def test_windows_random_left_padded() -> None:
    s = _store()
    b = s.sample_windows(256, K=4, rng=np.random.default_rng(0))
    _check_batch(b, 256, 4)
    mask = b["mask"]
    assert mask[:, -1].all()  # every window's last slot is real: padding is on the LEFT only
    assert (np.diff(mask.astype(int), axis=1) >= 0).all()
    assert (~mask).any()  # windows near episode ends and the 1-step episode are shorter than K


def test_windows_episode_start() -> None:
    b = _store().sample_windows(64, K=4, rng=np.random.default_rng(1), start="episode")
    _check_batch(b, 64, 4)
    first_real = np.argmax(b["mask"], axis=1)
    assert (b["timesteps"][np.arange(64), first_real] == 0).all()  # every window begins at t=0
    assert set(b["mask"].sum(1).tolist()) <= {3, 4, 1}  # min(K, T) for T in LENGTHS


def test_segments_right_padded() -> None:
    s = _store()
    for start in ("episode", "random"):
        b = s.sample_segments(128, max_len=8, rng=np.random.default_rng(2), start=start)
        _check_batch(b, 128, 8)
        mask = b["mask"]
        assert mask[:, 0].all() and (np.diff(mask.astype(int), axis=1) <= 0).all()  # padding on the RIGHT
        lengths = np.array(LENGTHS)[np.searchsorted(np.cumsum(LENGTHS), b["rewards"][:, 0] - 1, side="right")]
        np.testing.assert_array_equal(mask.sum(1), np.minimum(8, lengths))
        if start == "episode":
            assert (b["timesteps"][:, 0] == 0).all()
    b = s.sample_segments(64, max_len=8, rng=np.random.default_rng(3), start="random")
    assert (b["timesteps"][:, 0] > 0).any()  # the 10-step episode gets random starts 0..2


def _burn_in_reference(store: TrajectoryStore, B: int, K: int, burn_in: int, seed: int) -> dict:
    """sample_burn_in written as a plain loop over rows and steps, from the same random draws."""
    rng = np.random.default_rng(seed)
    eps = store.episode_of_step[rng.integers(0, store.num_transitions, size=B)]
    starts = np.floor(rng.random(B) * store.episode_lengths[eps]).astype(np.int64)
    L = burn_in + K
    out = {
        "states": np.zeros((B, L, store.obs_dim), np.float32), "actions": np.zeros((B, L, store.act_dim), np.float32),
        "rewards": np.zeros((B, L), np.float32), "rtg": np.zeros((B, L), np.float32),
        "timesteps": np.zeros((B, L), np.int64), "mask": np.zeros((B, L), bool),
    }  # fmt: skip
    for row, (ep, s) in enumerate(zip(eps, starts)):
        episode = store.episodes[ep]
        for j in range(L):
            t = s - burn_in + j
            if 0 <= t < len(episode):
                out["states"][row, j] = episode.observations[t]
                out["actions"][row, j] = episode.actions[t]
                out["rewards"][row, j] = episode.rewards[t]
                out["rtg"][row, j] = episode.rtg[t]
                out["timesteps"][row, j] = t
                out["mask"][row, j] = True
    return out


@pytest.mark.parametrize(("K", "burn_in"), [(4, 3), (1, 12), (12, 1), (3, 0)])
def test_burn_in_matches_a_plain_loop(K: int, burn_in: int) -> None:
    store = _store()
    b = store.sample_burn_in(64, K, burn_in, np.random.default_rng(5))
    _check_batch(b, 64, burn_in + K)
    want = _burn_in_reference(store, 64, K, burn_in, seed=5)
    for key in BATCH_KEYS:
        np.testing.assert_array_equal(b[key], want[key], err_msg=key)
    assert b["mask"][:, burn_in].all()  # the window's first step is always a real step
    if burn_in:
        assert not b["mask"][:, 0].all()  # windows near an episode start get left padding


def test_weighting_by_length() -> None:
    """Episodes are drawn in proportion to their length (DT); chi-square test at a fixed seed."""
    s = _store()
    b = s.sample_windows(20000, K=1, rng=np.random.default_rng(123), start="episode")
    ep = np.searchsorted(np.cumsum(LENGTHS), b["rewards"][:, 0] - 1, side="right")
    counts = np.bincount(ep, minlength=4)
    expected = 20000 * np.array(LENGTHS) / sum(LENGTHS)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.27  # 99.9% quantile of chi-square with 3 degrees of freedom
    b = s.sample_windows(20000, K=1, rng=np.random.default_rng(123), start="episode", weighting="uniform")
    counts = np.bincount(np.searchsorted(np.cumsum(LENGTHS), b["rewards"][:, 0] - 1, side="right"), minlength=4)
    assert (((counts - 5000) ** 2 / 5000).sum()) < 16.27


def test_random_start_uniform_within_episode() -> None:
    """With start='random', every transition is equally likely to start a window."""
    b = _store().sample_windows(40000, K=1, rng=np.random.default_rng(7))
    counts = np.bincount(b["rewards"][:, 0].astype(int) - 1, minlength=20)
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert chi2 < 43.82  # 99.9% quantile, 19 degrees of freedom


def test_sampling_is_seeded() -> None:
    s = _store()
    a = s.sample_windows(8, 5, np.random.default_rng(9))
    b = s.sample_windows(8, 5, np.random.default_rng(9))
    for key in BATCH_KEYS:
        np.testing.assert_array_equal(a[key], b[key])


def test_sampler_errors() -> None:
    s = _store()
    with pytest.raises(ValueError, match=r"unknown start 'middle'"):
        s.sample_windows(2, 3, np.random.default_rng(0), start="middle")
    with pytest.raises(TypeError, match=r"rng must be a numpy Generator"):
        s.sample_segments(2, 3, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must be >= 1, got 0 and 3"):
        s.sample_windows(0, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"unknown weighting 'square'"):
        s.sample_windows(2, 3, np.random.default_rng(0), weighting="square")


def test_constructor_errors() -> None:
    obs, act, rew = np.zeros((5, 2)), np.zeros((5, 1)), np.zeros(5)
    with pytest.raises(ValueError, match=r"observations has 5 steps, actions 4, rewards 5"):
        TrajectoryStore(obs, act[:4], rew, [5], [True], [False], env_id="Hopper-v5")
    with pytest.raises(
        ValueError, match=r"episode_lengths must be >= 1 and sum to the 5 steps, got 2 episodes summing to 4"
    ):
        TrajectoryStore(obs, act, rew, [2, 2], [True, True], [False, False], env_id="Hopper-v5")
    bad = rew.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"'rewards' holds NaN or inf, first at index 3"):
        TrajectoryStore(obs, act, bad, [5], [True], [False], env_id="Hopper-v5")
    with pytest.raises(ValueError, match=r"unknown score_reference 'paper'"):
        TrajectoryStore(obs, act, rew, [5], [True], [False], env_id="Hopper-v5", score_reference="paper")


def test_big_store_is_fast() -> None:
    """200k transitions build and sample without per-step Python loops (loose bound for a loaded machine)."""
    import time

    n, t = 200_000, 1000
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    s = TrajectoryStore(
        rng.normal(size=(n, 11)).astype(np.float32),
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.normal(size=n).astype(np.float32),
        [t] * (n // t),
        [False] * (n // t),
        [True] * (n // t),
        env_id="Hopper-v5",
    )
    s.sample_windows(64, 20, rng)
    s.sample_segments(16, 1000, rng)
    assert time.perf_counter() - t0 < 5.0
    np.testing.assert_allclose(s.episodes[7].rtg[0], s.episodes[7].rewards.astype(np.float64).sum(), rtol=1e-4)
