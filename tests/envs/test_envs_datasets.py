"""Loading Minari datasets and D4RL-layout HDF5 files: splitting, RTG, scores and every validation error."""

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from envs import load_dataset
from envs.datasets import infer_timeouts, split_episodes


# --- D4RL -------------------------------------------------------------------------------------------------------
def test_split_terminal_timeout_and_tail() -> None:
    terminals = np.array([0, 0, 1, 0, 0, 0, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 1, 0, 0, 0], bool)
    lengths, terminated, truncated = split_episodes(terminals, timeouts)
    assert lengths.tolist() == [3, 2, 3]
    assert terminated.tolist() == [True, False, False]
    assert truncated.tolist() == [False, True, True]  # the unflagged tail is kept, as truncated


def test_split_no_flags_is_one_truncated_episode() -> None:
    lengths, terminated, truncated = split_episodes(np.zeros(4, bool), np.zeros(4, bool))
    assert lengths.tolist() == [4] and terminated.tolist() == [False] and truncated.tolist() == [True]


def test_load_d4rl_episodes(d4rl_file) -> None:
    store = load_dataset(f"d4rl:{d4rl_file.path}")
    assert store.env_id == "Hopper-v5"  # from the file name
    assert (store.obs_dim, store.act_dim) == (11, 3)
    assert store.episode_lengths.tolist() == d4rl_file.lengths
    assert [e.terminated for e in store.episodes] == d4rl_file.terminated
    assert [e.truncated for e in store.episodes] == d4rl_file.truncated
    assert store.num_transitions == sum(d4rl_file.lengths) == len(d4rl_file.arrays["rewards"])
    assert store.num_episodes == len(d4rl_file.lengths)
    np.testing.assert_array_equal(store.observations, d4rl_file.arrays["observations"])
    assert store.score_reference == "d4rl" and (store.ref_min, store.ref_max) == (-20.272305, 3234.3)


def test_rtg_and_returns_by_hand(d4rl_file) -> None:
    store = load_dataset(f"d4rl:{d4rl_file.path}")
    rewards = d4rl_file.arrays["rewards"].astype(np.float64)
    start = 0
    for ep, length in zip(store.episodes, d4rl_file.lengths, strict=True):
        r = rewards[start : start + length]
        by_hand = [sum(r[t:]) for t in range(length)]  # undiscounted return from t to the end
        np.testing.assert_allclose(ep.rtg, by_hand, rtol=1e-5)
        np.testing.assert_array_equal(ep.rewards, r.astype(np.float32))
        start += length
    np.testing.assert_allclose(store.episode_returns, [e.rtg[0] for e in store.episodes], rtol=1e-5)


def test_state_stats(d4rl_file) -> None:
    store = load_dataset(f"d4rl:{d4rl_file.path}")
    obs = d4rl_file.arrays["observations"].astype(np.float64)
    np.testing.assert_allclose(store.state_mean, obs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(store.state_std, obs.std(0) + 1e-6, rtol=1e-5)
    assert store.state_mean.dtype == store.state_std.dtype == np.float32


def test_env_inferred_from_shape_or_given(d4rl_file, write_d4rl) -> None:
    path = write_d4rl(d4rl_file.arrays, name="data.hdf5")  # no env in the name: obs 11 / act 3 is only Hopper
    assert load_dataset(f"d4rl:{path}").env_id == "Hopper-v5"
    assert load_dataset(f"d4rl:{path}", env_id="hopper").env_id == "Hopper-v5"


def test_ambiguous_env_error(write_d4rl) -> None:
    n = 4
    arrays = {
        "observations": np.zeros((n, 17), np.float32),
        "actions": np.zeros((n, 6), np.float32),
        "rewards": np.zeros(n),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    path = write_d4rl(arrays, name="data.hdf5")
    expected = r"cannot infer the environment.*obs_dim=17, act_dim=6.*pass the env \(--env, or env_id="
    with pytest.raises(ValueError, match=expected):
        load_dataset(f"d4rl:{path}")
    assert load_dataset(f"d4rl:{path}", env_id="walker2d").env_id == "Walker2d-v5"


def _with(arrays: dict, **changes: np.ndarray) -> dict:
    out = dict(arrays)
    out.update(changes)
    return out


def test_missing_key_error(d4rl_file, write_d4rl: Callable[..., Path]) -> None:
    arrays = {k: v for k, v in d4rl_file.arrays.items() if k != "terminals"}
    path = write_d4rl(arrays)
    with pytest.raises(ValueError, match=r"missing key 'terminals' in .*hopper-bad\.hdf5"):
        load_dataset(f"d4rl:{path}")


def test_missing_timeouts_are_inferred_from_terminals_and_the_time_limit(write_d4rl) -> None:
    """An old-style file: 2 episodes of 1000 steps (time limit), one that falls at step 300, a 50-step tail."""
    lengths = [1000, 1000, 300, 50]
    n = sum(lengths)
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[2000 + 299] = True
    arrays = {
        "observations": rng.normal(size=(n, 11)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
    }
    path = write_d4rl(arrays, name="hopper-medium-v0.hdf5")
    with pytest.warns(UserWarning, match=r"no 'timeouts' \(older D4RL files lack it\); episode ends are inferred"):
        store = load_dataset(f"d4rl:{path}")
    assert [len(ep.rewards) for ep in store.episodes] == lengths
    assert [ep.terminated for ep in store.episodes] == [False, False, True, False]
    assert [ep.truncated for ep in store.episodes] == [True, True, False, True]
    assert infer_timeouts(terminals).sum() == 2


def test_directory_spec_says_directory(tmp_path: Path, d4rl_file) -> None:
    (tmp_path / "hopper-medium-v2.hdf5").write_bytes(d4rl_file.path.read_bytes())
    with pytest.raises(
        IsADirectoryError,
        match=r"is a directory, not an HDF5 file; pass the file itself, e.g. "
        r"'d4rl:.*hopper-medium-v2\.hdf5' \(it holds \['hopper-medium-v2.hdf5'\]\)",
    ):
        load_dataset(f"d4rl:{tmp_path}")


@pytest.mark.parametrize("kind", ["truncated", "text"])
def test_unreadable_hdf5_names_path_and_fix(tmp_path: Path, d4rl_file, kind: str) -> None:
    data = d4rl_file.path.read_bytes()
    path = tmp_path / "hopper-medium-v2.hdf5"
    path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"<html>404 Not Found</html>")
    with pytest.raises(
        ValueError,
        match=rf"cannot read {re.escape(str(path))} \(\d+ bytes\) as HDF5: .*"
        r"truncated \(an interrupted download or copy\) or not an HDF5 file: download or copy it again",
    ):
        load_dataset(f"d4rl:{path}")


def test_actions_outside_bounds_warn_on_load(d4rl_file, write_d4rl) -> None:
    actions = d4rl_file.arrays["actions"].copy()
    actions[12] = [50.0, 0.0, 0.0]
    path = write_d4rl(_with(d4rl_file.arrays, actions=actions))
    with pytest.warns(
        UserWarning,
        match=r"1 of \d+ actions lie outside Hopper-v5's action bounds \[-1, 1\] "
        r"\(first at index 12: \[50.0, 0.0, 0.0\]; largest excess 49\)",
    ):
        store = load_dataset(f"d4rl:{path}")
    assert store.actions[12, 0] == 50.0  # kept as is: the warning says what evaluation will do with such actions


def test_in_bounds_actions_load_without_warning(d4rl_file) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(f"d4rl:{d4rl_file.path}")


def test_mismatched_lengths_error(d4rl_file, write_d4rl) -> None:
    n = len(d4rl_file.arrays["rewards"])
    path = write_d4rl(_with(d4rl_file.arrays, actions=d4rl_file.arrays["actions"][:-1]))
    with pytest.raises(
        ValueError, match=rf"mismatched lengths: 'observations' has {n} steps but 'actions' has {n - 1}"
    ):
        load_dataset(f"d4rl:{path}")


@pytest.mark.parametrize(("key", "bad"), [("observations", np.nan), ("actions", np.inf), ("rewards", -np.inf)])
def test_nan_inf_error(d4rl_file, write_d4rl, key: str, bad: float) -> None:
    values = d4rl_file.arrays[key].copy()
    values[7] = bad  # row 7 (all columns of it for 2-D keys)
    values[30] = bad
    path = write_d4rl(_with(d4rl_file.arrays, **{key: values}))
    with pytest.raises(ValueError, match=rf"'{key}' holds NaN or inf, first at index 7 "):
        load_dataset(f"d4rl:{path}")


def test_obs_shape_mismatch_error(d4rl_file, write_d4rl) -> None:
    obs = np.concatenate([d4rl_file.arrays["observations"], np.zeros((len(d4rl_file.arrays["rewards"]), 1))], 1)
    path = write_d4rl(_with(d4rl_file.arrays, observations=obs))
    with pytest.raises(ValueError, match=r"'observations' has per-step shape \(12,\) but Hopper-v5 expects \(11,\)"):
        load_dataset(f"d4rl:{path}")


def test_action_shape_mismatch_error(d4rl_file) -> None:
    with pytest.raises(
        ValueError, match=r"'observations' has per-step shape \(11,\) but HalfCheetah-v5 expects \(17,\)"
    ):
        load_dataset(f"d4rl:{d4rl_file.path}", env_id="halfcheetah")


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file.*python run_rl.py collect --env hopper --level medium"):
        load_dataset(f"d4rl:{tmp_path / 'nope.hdf5'}")


def test_unknown_prefix_error() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset spec 'hopper-medium-v2'.*\['minari:', 'd4rl:'\]"):
        load_dataset("hopper-medium-v2")


def test_unknown_env_id_error(d4rl_file) -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'Hoppr-v5'"):
        load_dataset(f"d4rl:{d4rl_file.path}", env_id="Hoppr-v5")


# --- Minari -----------------------------------------------------------------------------------------------------
def test_load_minari_ours(minari_datasets) -> None:
    store = load_dataset(f"minari:{minari_datasets.ours_id}")
    rollouts = minari_datasets.rollouts
    assert store.env_id == "Hopper-v5"
    assert store.episode_lengths.tolist() == [len(r.rewards) for r in rollouts]
    assert [e.terminated for e in store.episodes] == [r.terminated for r in rollouts]
    assert [e.truncated for e in store.episodes] == [r.truncated for r in rollouts]
    for ep, r in zip(store.episodes, rollouts, strict=True):
        assert ep.observations.shape == (len(r.rewards), 11)  # T states acted on, not T+1
        np.testing.assert_allclose(ep.observations, r.observations[:-1], rtol=1e-6)
        np.testing.assert_allclose(ep.rtg, np.cumsum(r.rewards[::-1])[::-1], rtol=1e-5)
    assert store.score_reference == "d4rl"  # our datasets say so in their metadata
    np.testing.assert_allclose(store.normalize_score([3234.3]), [100.0])


def test_load_minari_own_reference(minari_datasets) -> None:
    store = load_dataset(f"minari:{minari_datasets.ref_id}")
    assert store.score_reference == "minari" and (store.ref_min, store.ref_max) == (0.0, 100.0)
    np.testing.assert_allclose(store.normalize_score([25.0, 50.0]), [25.0, 50.0])


def test_minari_env_override_shape_error(minari_datasets) -> None:
    with pytest.raises(ValueError, match=r"'observations' has per-step shape \(11,\) but Walker2d-v5 expects \(17,\)"):
        load_dataset(f"minari:{minari_datasets.ours_id}", env_id="Walker2d-v5")


def test_missing_minari_dataset_error(minari_datasets) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"'minrnn/hopper/medium-v0' is not in .*run_rl.py collect --env hopper "
        r"--level medium.*MINARI_DATASETS_PATH.*d4rl:",
    ):
        load_dataset("minari:minrnn/hopper/medium-v0")
