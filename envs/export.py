"""Write a loaded dataset in D4RL's HDF5 layout, so tools that read D4RL files (d3rlpy, CORL) can train on it.

D4RL layout (Fu et al. 2020, github.com/Farama-Foundation/D4RL ``d4rl/offline_env.py``): flat arrays with one row
per transition, episodes back to back::

    observations (N, obs) float32   actions (N, act) float32   rewards (N,) float32
    terminals (N,) bool             timeouts (N,) bool         next_observations (N, obs) float32

An episode ends at the row where ``terminals`` (a terminal state) or ``timeouts`` (a time limit or the end of the
data) is true. The file also carries ``env_id``, ``ref_min_score`` and ``ref_max_score`` as attributes, which
``envs.load_dataset("d4rl:FILE")`` reads back.

>>> import tempfile, numpy as np
>>> from envs.store import TrajectoryStore
>>> store = TrajectoryStore(np.zeros((5, 11)), np.zeros((5, 3)), np.ones(5), [3, 2], [True, False], [False, True],
...                         env_id="Hopper-v5")
>>> path = write_d4rl(store, tempfile.mkdtemp() + "/hopper.hdf5")
>>> import h5py
>>> with h5py.File(path) as f:
...     f["terminals"][:].tolist(), f["timeouts"][:].tolist()
([False, False, True, False, False], [False, False, False, False, True])
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from envs.store import TrajectoryStore

__all__ = ["write_d4rl"]


def write_d4rl(store: TrajectoryStore, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``store`` as a D4RL-layout HDF5 file at ``path`` and return the path.

    ``next_observations`` repeats the episode's last observation at its last row (the store keeps the states acted
    on, not the final one); D4RL's own files do the same at timeouts. Refuses to replace an existing file unless
    ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    n = store.num_transitions
    ends = store.episode_starts + store.episode_lengths - 1  # (E,) last row of each episode
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    terminals[ends[store.episode_terminated]] = True
    timeouts[ends[~store.episode_terminated]] = True
    nxt = np.empty_like(store.observations)
    nxt[:-1] = store.observations[1:]
    nxt[ends] = store.observations[ends]
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("observations", data=store.observations)
        f.create_dataset("actions", data=store.actions)
        f.create_dataset("rewards", data=store.rewards)
        f.create_dataset("terminals", data=terminals)
        f.create_dataset("timeouts", data=timeouts)
        f.create_dataset("next_observations", data=nxt)
        f.attrs["env_id"] = store.env_id
        if store.ref_min is not None and store.ref_max is not None:
            f.attrs["ref_min_score"] = float(store.ref_min)
            f.attrs["ref_max_score"] = float(store.ref_max)
    os.replace(tmp, path)
    return path
