"""Measure the envs/ data path and evaluation on this machine.

    python scripts/bench_envs.py                      # everything
    python scripts/bench_envs.py --skip-load          # evaluation only

1. Load time of a synthetic 1M-transition D4RL-layout HDF5 file (1000-step episodes, Hopper shapes: obs 11, act 3),
   written to /tmp, through ``load_dataset("d4rl:...")``; plus the time of one sampled batch.
2. Wall time of ``evaluate`` for 10 episodes, vectorised (n_envs=10, sync and async) against one env at a time
   (n_envs=1): Hopper-v5 with a uniform-random policy (it falls after ~20 steps), HalfCheetah-v5 with the same
   (never terminates: 10 x 1000 steps), and HalfCheetah-v5 with a SAC-sized torch MLP policy (one thread).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from envs import evaluate, load_dataset  # noqa: E402


def write_synthetic_d4rl(path: Path, n: int = 1_000_000, episode_len: int = 1000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(n, bool)
    timeouts[episode_len - 1 :: episode_len] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["next_observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        f["rewards"] = rng.normal(3.0, 1.0, size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = timeouts
    return path


def bench_load(repeats: int) -> None:
    path = Path("/tmp/bench_envs_hopper_1M.hdf5")
    if not path.exists():
        write_synthetic_d4rl(path)
    print(f"file: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        store = load_dataset(f"d4rl:{path}")
        times.append(time.perf_counter() - t0)
    print(
        f"load_dataset 1M transitions, {store.num_episodes} episodes: "
        f"median {np.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})"
    )
    rng = np.random.default_rng(0)
    for name, fn in (
        ("sample_windows(64, K=20)", lambda: store.sample_windows(64, 20, rng)),
        ("sample_segments(16, max_len=1000)", lambda: store.sample_segments(16, 1000, rng)),
    ):
        fn()
        t0 = time.perf_counter()
        for _ in range(100):
            fn()
        print(f"{name}: {(time.perf_counter() - t0) * 10:.2f} ms per batch")


class RandomPolicy:
    """Seeded uniform actions in [-1, 1]: almost free, so the environments dominate."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=(len(obs), self.act_dim))

    act_dim = 3


class MLPPolicy(RandomPolicy):
    """A SAC-actor-sized torch MLP (obs -> 256 -> 256 -> act, one thread): a policy whose call costs something."""

    def __init__(self, seed: int = 0) -> None:
        import torch

        super().__init__(seed)
        torch.manual_seed(seed)
        self.torch = torch
        self.net = None

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        torch = self.torch
        if self.net is None:
            d = obs.shape[1]
            self.net = torch.nn.Sequential(
                torch.nn.Linear(d, 256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, 256),
                torch.nn.ReLU(),
                torch.nn.Linear(256, self.act_dim),
            )
        with torch.no_grad():
            return torch.tanh(self.net(torch.as_tensor(obs, dtype=torch.float32))).numpy()


def bench_eval(repeats: int) -> None:
    import torch

    torch.set_num_threads(1)
    configs = [("one env at a time", 1, "sync"), ("vectorised sync", 10, "sync"), ("vectorised async", 10, "async")]
    cases = [("Hopper-v5", 3, RandomPolicy), ("HalfCheetah-v5", 6, RandomPolicy), ("HalfCheetah-v5", 6, MLPPolicy)]
    for env_id, act_dim, policy_cls in cases:
        for label, n_envs, vector in configs:
            times, steps = [], 0
            for r in range(repeats):
                policy = policy_cls(seed=r)
                policy.act_dim = act_dim
                res = evaluate(policy, env_id, n_episodes=10, n_envs=n_envs, seed=0, vector=vector)
                times.append(res.wall_time_s)
                steps = int(res.lengths.sum())
            print(
                f"{env_id} {policy_cls.__name__}: {label:18s} n_envs={n_envs:2d}: median {np.median(times):.3f} s "
                f"for 10 episodes / {steps} steps (runs: {', '.join(f'{t:.3f}' for t in times)})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    if not args.skip_load:
        bench_load(args.repeats)
    if not args.skip_eval:
        bench_eval(args.repeats)


if __name__ == "__main__":
    main()
