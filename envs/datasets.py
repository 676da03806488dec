"""Load offline datasets into a ``TrajectoryStore``, validating them first.

Specs:
- ``"minari:<dataset id>"``: a Minari dataset from ``$MINARI_DATASETS_PATH`` (default ~/.minari/datasets);
  it is downloaded only with ``download=True`` and a network. Minari stores T+1 observations per episode;
  the last (the state after the final action) is dropped.
- ``"d4rl:<path.hdf5>"``: a D4RL-layout HDF5 file with observations (N, obs), actions (N, act), rewards (N,),
  terminals (N,), timeouts (N,). Episodes end where terminals | timeouts; a tail with no end flag is kept as a
  truncated episode. Older D4RL files (the -v0 datasets) have no ``timeouts``: episode ends are then inferred from
  terminals and the 1000-step time limit, with a warning (``infer_timeouts``).

Every error names the spec, the key, and the first bad index where one applies. Actions outside the env's action
bounds load with a warning: the agent would learn to imitate them, and evaluation clips what it sends to the env.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from envs.make import D4RL_ENV_IDS, DEFAULT_MAX_EPISODE_STEPS, ENV_SHORTHANDS, env_dims, make_env, resolve_env_id
from envs.scores import D4RL_LEVELS, D4RL_REF, d4rl_env_key
from envs.store import TrajectoryStore, first_bad_index

#: Keys a D4RL-layout HDF5 file must hold.
D4RL_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "terminals", "timeouts")
#: Keys a D4RL file may lack: older D4RL files have no ``timeouts`` (inferred, see ``infer_timeouts``).
D4RL_OPTIONAL_KEYS: tuple[str, ...] = ("timeouts",)
#: How far (absolute) an action may lie outside the env's bounds before loading warns; float32 round-off is fine.
ACTION_BOUND_TOLERANCE = 1e-4
#: Spec prefixes understood by ``load_dataset``.
SPEC_PREFIXES: tuple[str, ...] = ("minari:", "d4rl:")


def minari_root() -> Path:
    """The folder Minari reads local datasets from: $MINARI_DATASETS_PATH or ~/.minari/datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def _how_to_get_data(dataset_id: str | None = None) -> str:
    """The fix for a missing dataset; for one of our own ids, the `collect` command that makes exactly that one."""
    m = re.fullmatch(r"minrnn/(\w+)/([a-z-]+)-v0", dataset_id or "")
    ours = m and m.group(1) in D4RL_ENV_IDS and m.group(2) in D4RL_LEVELS
    env, level = (m.group(1), m.group(2)) if ours else ("hopper", "medium")
    return (
        f"To create one locally run `python run_rl.py collect --env {env} --level {level}` "
        f"(it writes minari:minrnn/{env}/{level}-v0); or set MINARI_DATASETS_PATH to the folder holding your "
        f"Minari datasets (now {minari_root()}); or load a D4RL file with "
        "'d4rl:/path/to/hopper-medium-v2.hdf5'. "
        "`python run_rl.py datasets` lists what is available locally."
    )


def load_dataset(spec: str, env_id: str | None = None, download: bool = False) -> TrajectoryStore:
    """Load ``"minari:<id>"`` or ``"d4rl:<path.hdf5>"`` into a TrajectoryStore.

    Args:
        spec: dataset spec with its prefix.
        env_id: Gymnasium id (or shorthand) to use instead of the one the dataset names; the data's shapes are
            checked against it. Required for D4RL files whose env cannot be inferred from name or shapes.
        download: allow Minari to download a dataset that is not local (needs a network).
    """
    if spec.startswith("minari:"):
        return load_minari(spec[len("minari:") :], env_id=env_id, download=download)
    if spec.startswith("d4rl:"):
        return load_d4rl(spec[len("d4rl:") :], env_id=env_id)
    raise ValueError(
        f"unknown dataset spec {spec!r}: it must start with one of {list(SPEC_PREFIXES)}, e.g. "
        "'minari:minrnn/hopper/medium-v0' or 'd4rl:/data/hopper-medium-v2.hdf5'"
    )


# --- shared validation --------------------------------------------------------------------------------
def split_episodes(terminals: np.ndarray, timeouts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Episode (lengths, terminated, truncated) from per-step flags; an unflagged final tail is truncated.

    >>> split_episodes(np.array([0, 1, 0, 0, 0, 0], bool), np.array([0, 0, 0, 1, 0, 0], bool))
    (array([2, 2, 2]), array([ True, False, False]), array([False,  True,  True]))
    """
    n = len(terminals)
    ends = np.flatnonzero(terminals | timeouts)
    terminated, truncated = terminals[ends], timeouts[ends]
    if len(ends) == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
        terminated, truncated = np.append(terminated, False), np.append(truncated, True)
    lengths = np.diff(np.concatenate([[-1], ends]))
    return lengths, terminated, truncated


def infer_timeouts(terminals: np.ndarray, max_steps: int = DEFAULT_MAX_EPISODE_STEPS) -> np.ndarray:
    """Timeout flags (N,) bool for a file that has only terminals (N,): a step is a timeout when it is the
    ``max_steps``-th step since the last episode end and not itself a terminal.

    This is the rule D4RL's own loader falls back to without ``timeouts`` (d4rl/__init__.py, ``qlearning_dataset``:
    ``final_timestep = (episode_step == env._max_episode_steps - 1)``).

    >>> infer_timeouts(np.array([0, 1, 0, 0, 0, 0, 0, 0], bool), max_steps=3).astype(int).tolist()
    [0, 0, 0, 0, 1, 0, 0, 1]
    """
    terminals = np.asarray(terminals, dtype=bool)
    idx = np.arange(len(terminals))
    last_end = np.maximum.accumulate(np.where(terminals, idx, -1))  # (N,) index of the last terminal at or before i
    prev_end = np.concatenate([[-1], last_end[:-1]])  # (N,) ... strictly before i
    step_in_episode = idx - prev_end - 1  # 0-based; keeps counting past a timeout, hence the modulo below
    return ((step_in_episode + 1) % max_steps == 0) & ~terminals


def _warn_actions_out_of_bounds(actions: np.ndarray, env_id: str, source: str) -> None:
    """Warn when dataset actions (N, act) lie outside the env's Box bounds by more than ACTION_BOUND_TOLERANCE."""
    low, high = _action_bounds(env_id)
    excess = np.maximum(actions - high, low - actions)  # (N, act) > 0 where outside
    bad = excess > ACTION_BOUND_TOLERANCE
    if not bad.any():
        return
    first = int(np.flatnonzero(bad.any(axis=1))[0])
    warnings.warn(
        f"{source}: {int(bad.any(axis=1).sum())} of {len(actions)} actions lie outside {env_id}'s action bounds "
        f"[{low.min():g}, {high.max():g}] (first at index {first}: {actions[first].tolist()}; largest excess "
        f"{float(excess.max()):g}). The agent will imitate them, but evaluation clips actions to the bounds: check "
        "that the data was made for this env (--env on the command line, env_id= in load_dataset), or rescale/clip "
        "the actions before loading.",
        stacklevel=3,
    )


@functools.lru_cache(maxsize=16)
def _action_bounds(env_id: str) -> tuple[np.ndarray, np.ndarray]:
    env = make_env(env_id)
    try:
        return np.asarray(env.action_space.low), np.asarray(env.action_space.high)
    finally:
        env.close()


def _check_steps_finite(key: str, values: np.ndarray, lengths: np.ndarray, source: str) -> None:
    idx = first_bad_index(values)
    if idx is None:
        return
    ends = np.cumsum(lengths)
    episode = int(np.searchsorted(ends, idx, side="right"))
    step = idx - (int(ends[episode - 1]) if episode else 0)
    raise ValueError(
        f"{source}: '{key}' holds NaN or inf, first at index {idx} (episode {episode}, step {step}, "
        f"value {values[idx]!r}); drop or repair those steps before loading."
    )


def _check_against_env(obs_shape: tuple[int, ...], act_shape: tuple[int, ...], env_id: str, source: str) -> None:
    env_obs, env_act = env_dims(env_id)
    for key, got, want in (("observations", obs_shape, env_obs), ("actions", act_shape, env_act)):
        if tuple(got) != tuple(want):
            raise ValueError(
                f"{source}: '{key}' has per-step shape {tuple(got)} but {env_id} expects {tuple(want)}; "
                "pass the right env (--env on the command line, env_id= in load_dataset) or load the dataset made for "
                "this env."
            )


def _flat_box(space: gym.Space, what: str, source: str) -> None:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{source}: {what} space {space} is not a flat Box; only flat Box spaces are supported")


# --- D4RL HDF5 --------------------------------------------------------------------------------
def _infer_d4rl_env(path: Path, obs_dim: int, act_dim: int, attrs_env: str | None) -> str:
    if attrs_env:
        return resolve_env_id(attrs_env)
    key = d4rl_env_key(path.name)
    if key is not None:
        return D4RL_ENV_IDS[key]
    matches = [eid for eid in D4RL_ENV_IDS.values() if env_dims(eid) == ((obs_dim,), (act_dim,))]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(
        f"d4rl:{path}: cannot infer the environment from the file name or from obs_dim={obs_dim}, "
        f"act_dim={act_dim} (matches: {matches or 'none'}); pass the env (--env, or env_id= in load_dataset), "
        "e.g. one of "
        f"{sorted(set(ENV_SHORTHANDS.values()))}."
    )


def _read_d4rl_arrays(path: Path, source: str) -> tuple[dict[str, np.ndarray], str | None]:
    """The D4RL arrays (``timeouts`` may be absent) and the file's env_id attribute, with h5py's errors explained."""
    try:
        with h5py.File(path, "r") as f:
            required = [k for k in D4RL_KEYS if k not in D4RL_OPTIONAL_KEYS]
            missing = [k for k in required if k not in f]
            if missing:
                raise ValueError(
                    f"{source}: missing key '{missing[0]}' in {path} (missing {missing}; "
                    f"the file has {sorted(f.keys())}). "
                    f"A D4RL-layout file needs {required} (and 'timeouts', inferred when absent)."
                )
            present = [k for k in D4RL_KEYS if k in f]
            for key in present:
                if not isinstance(f[key], h5py.Dataset):
                    raise ValueError(
                        f"{source}: '{key}' in {path} is a group, not an array; dict spaces are unsupported"
                    )
            arrays = {key: f[key][()] for key in present}
            attrs_env = f.attrs.get("env_id")
    except OSError as err:  # h5py: "file signature not found", "truncated file: eof = ...", unreadable chunks
        size = path.stat().st_size
        raise ValueError(
            f"{source}: cannot read {path} ({size} bytes) as HDF5: {err}. The file is truncated (an interrupted "
            "download or copy) or not an HDF5 file: download or copy it again, and check with `h5ls` that it "
            f"opens; D4RL files hold {list(D4RL_KEYS)}."
        ) from err
    return arrays, (attrs_env.decode() if isinstance(attrs_env, bytes) else attrs_env)


def _check_d4rl_shapes(arrays: dict[str, np.ndarray], source: str) -> None:
    want_ndim = {"observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1}
    for key, ndim in want_ndim.items():
        if arrays[key].ndim != ndim:
            raise ValueError(
                f"{source}: '{key}' must have {ndim} dims (N{', dim' * (ndim - 1)}), got {arrays[key].shape}"
            )
    n = len(arrays["observations"])
    for key in D4RL_KEYS[1:]:
        if len(arrays[key]) != n:
            raise ValueError(
                f"{source}: mismatched lengths: 'observations' has {n} steps but '{key}' has {len(arrays[key])}"
            )
    if n == 0:
        raise ValueError(f"{source}: the file holds no steps ('observations' has length 0)")


def load_d4rl(path: str | os.PathLike, env_id: str | None = None) -> TrajectoryStore:
    """Load a D4RL-layout HDF5 file; see the module docstring. Scores use the D4RL table."""
    path = Path(path).expanduser()
    source = f"d4rl:{path}"
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.hdf5"))[:5]
        raise IsADirectoryError(
            f"{source}: is a directory, not an HDF5 file; pass the file itself, e.g. "
            f"'d4rl:{path / (inside[0] if inside else 'hopper-medium-v2.hdf5')}'"
            + (f" (it holds {inside})" if inside else " (it holds no .hdf5 files)")
        )
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file. {_how_to_get_data()}")
    arrays, attrs_env = _read_d4rl_arrays(path, source)
    rewards = arrays["rewards"]
    if rewards.ndim == 2 and rewards.shape[1] == 1:  # some writers store (N, 1)
        arrays["rewards"] = rewards[:, 0]
    if "timeouts" not in arrays:
        arrays["timeouts"] = infer_timeouts(np.asarray(arrays["terminals"]).reshape(-1).astype(bool))
        warnings.warn(
            f"{source}: the file has no 'timeouts' (older D4RL files lack it); episode ends are inferred from "
            f"'terminals' and the {DEFAULT_MAX_EPISODE_STEPS}-step time limit, as D4RL's own loader does. "
            "Add a 'timeouts' array to the file to silence this.",
            stacklevel=2,
        )
    _check_d4rl_shapes(arrays, source)
    terminals, timeouts = arrays["terminals"].astype(bool), arrays["timeouts"].astype(bool)
    lengths, terminated, truncated = split_episodes(terminals, timeouts)
    for key in ("observations", "actions", "rewards"):
        _check_steps_finite(key, arrays[key], lengths, source)
    obs_dim, act_dim = arrays["observations"].shape[1], arrays["actions"].shape[1]
    env = resolve_env_id(env_id) if env_id else _infer_d4rl_env(path, obs_dim, act_dim, attrs_env)
    _check_against_env((obs_dim,), (act_dim,), env, source)
    _warn_actions_out_of_bounds(arrays["actions"], env, source)
    reference = "d4rl" if d4rl_env_key(env) in D4RL_REF else "none"
    return TrajectoryStore(
        arrays["observations"],
        arrays["actions"],
        arrays["rewards"],
        lengths,
        terminated,
        truncated,
        env_id=env,
        score_reference=reference,
        name=source,
    )


# --- Minari --------------------------------------------------------------------------------
def _open_minari(dataset_id: str, download: bool, source: str):  # -> minari.MinariDataset
    import minari  # imported lazily: it pulls in optional storage backends

    try:
        return minari.load_dataset(dataset_id, download=download)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{source}: dataset {dataset_id!r} is not in {minari_root()}. {_how_to_get_data(dataset_id)}"
        ) from err
    except Exception as err:  # a failed download: no network, unknown remote id
        if not download:
            raise
        raise FileNotFoundError(
            f"{source}: could not download {dataset_id!r} ({type(err).__name__}: {err}). {_how_to_get_data()}"
        ) from err


def minari_score_reference(metadata: dict, env_id: str) -> tuple[str, float | None, float | None]:
    """(reference, ref_min, ref_max) for a Minari dataset.

    Our generated datasets carry ``"score_reference": "d4rl"``: D4RL table. Otherwise the dataset's own
    ref_min_score/ref_max_score ("minari") when present; otherwise the D4RL table if the env has an
    entry, else "none".
    """
    if metadata.get("score_reference") == "d4rl" and d4rl_env_key(env_id):
        return "d4rl", None, None
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if ref_min is not None and ref_max is not None:
        return "minari", float(ref_min), float(ref_max)
    return ("d4rl", None, None) if d4rl_env_key(env_id) else ("none", None, None)


def load_minari(dataset_id: str, env_id: str | None = None, download: bool = False) -> TrajectoryStore:
    """Load a Minari dataset; see the module docstring."""
    source = f"minari:{dataset_id}"
    ds = _open_minari(dataset_id, download, source)
    _flat_box(ds.observation_space, "observation", source)
    _flat_box(ds.action_space, "action", source)
    if env_id is None:
        if ds.env_spec is None:
            raise ValueError(
                f"{source}: the dataset names no environment; pass the env (--env, or env_id= in load_dataset), "
                "e.g. 'Hopper-v5'"
            )
        env_id = ds.env_spec.id
    env_id = resolve_env_id(env_id)

    obs, act, rew, term, trunc = [], [], [], [], []
    for ep in ds.iterate_episodes():
        o, a, r = np.asarray(ep.observations), np.asarray(ep.actions), np.asarray(ep.rewards)
        if not len(o) == len(a) + 1 == len(r) + 1 or len(a) == 0:
            raise ValueError(
                f"{source}: episode {ep.id}: mismatched lengths: 'observations' has {len(o)} (expected T+1), "
                f"'actions' {len(a)}, 'rewards' {len(r)}"
            )
        obs.append(o[:-1])
        act.append(a)
        rew.append(r)
        term.append(bool(ep.terminations[-1]))
        trunc.append(bool(ep.truncations[-1]) or not ep.terminations[-1])  # no end flag: truncated
    if not obs:
        raise ValueError(f"{source}: the dataset holds no episodes")
    lengths = np.array([len(r) for r in rew])
    arrays = {
        "observations": np.concatenate(obs),
        "actions": np.concatenate(act),
        "rewards": np.concatenate(rew),
    }
    for key, values in arrays.items():
        _check_steps_finite(key, values, lengths, source)
    _check_against_env(arrays["observations"].shape[1:], arrays["actions"].shape[1:], env_id, source)
    _warn_actions_out_of_bounds(arrays["actions"], env_id, source)
    reference, ref_min, ref_max = minari_score_reference(ds.storage.metadata, env_id)
    return TrajectoryStore(
        arrays["observations"],
        arrays["actions"],
        arrays["rewards"],
        lengths,
        term,
        trunc,
        env_id=env_id,
        score_reference=reference,
        ref_min=ref_min,
        ref_max=ref_max,
        name=source,
    )
