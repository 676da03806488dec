"""envs.export.write_d4rl: a Minari dataset written in D4RL's HDF5 layout reads back as the same episodes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from envs import load_dataset
from envs.export import write_d4rl


def test_round_trip_keeps_every_episode(minari_datasets, tmp_path):
    store = load_dataset(f"minari:{minari_datasets.ours_id}")
    path = write_d4rl(store, tmp_path / "hopper-tiny.hdf5")
    back = load_dataset(f"d4rl:{path}")
    np.testing.assert_array_equal(back.observations, store.observations)
    np.testing.assert_array_equal(back.actions, store.actions)
    np.testing.assert_array_equal(back.rewards, store.rewards)
    np.testing.assert_array_equal(back.episode_lengths, store.episode_lengths)
    np.testing.assert_array_equal(back.episode_terminated, store.episode_terminated)
    assert back.env_id == store.env_id == "Hopper-v5"
    # the rollouts themselves are the independent reference: one row per step, flags at each episode's last step
    rollouts = minari_datasets.rollouts
    assert store.num_transitions == sum(len(r.actions) for r in rollouts)
    with h5py.File(path) as f:
        ends = np.cumsum([len(r.actions) for r in rollouts]) - 1
        np.testing.assert_array_equal(np.flatnonzero(f["terminals"][:] | f["timeouts"][:]), ends)
        np.testing.assert_array_equal(f["terminals"][:][ends], [r.terminated for r in rollouts])
        first = len(rollouts[0].actions)
        np.testing.assert_allclose(f["next_observations"][: first - 1], rollouts[0].observations[1:first])


def test_refuses_to_replace_a_file(minari_datasets, tmp_path):
    store = load_dataset(f"minari:{minari_datasets.ours_id}")
    path = write_d4rl(store, tmp_path / "x.hdf5")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_d4rl(store, path)
    assert write_d4rl(store, path, overwrite=True) == path
