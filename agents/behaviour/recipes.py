"""D4RL-style dataset recipes: which behaviour policy, how many steps, and how the episodes are put together.

Levels (following D4RL: Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven Reinforcement Learning"):

- ``random``: uniform random actions.
- ``medium``: sampled-action rollouts of the SAC checkpoint whose score is nearest a target normalised score
  (hopper 47.5, halfcheetah 40, walker2d 67.5, near D4RL's medium datasets), re-measured with sampled actions
  (`pick_checkpoints`).
- ``medium-replay``: the SAC replay buffer up to that checkpoint. From a SAC run directory this is the real buffer.
  From the shipped policies it is an approximation, said so in the metadata: the buffer's history replayed as
  uniform-random steps for the warm-up, then, for each stretch between shipped checkpoints, that many sampled steps
  of the checkpoint that started the stretch.
- ``expert``: sampled-action rollouts of the best checkpoint of the run.
- ``medium-expert``: medium and expert episodes together.

Policies come either from the weights shipped in ``agents/behaviour/policies/`` (no training needed: a dataset builds in
minutes) or from a SAC run directory made by ``python -m agents.behaviour.sac`` (``--sac-run``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agents.behaviour.sac import LOG_STD_MAX, LOG_STD_MIN, load_actor, read_evals
from envs import provenance
from envs.collect import CollectedEpisode, dataset_id, rollout, write_dataset
from envs.make import D4RL_ENV_IDS, make_env
from envs.provenance import file_sha256
from envs.scores import D4RL_LEVELS, d4rl_env_key, normalized_score

POLICY_DIR = Path(__file__).parent / "policies"
LEVELS = D4RL_LEVELS
MEDIUM_TARGET = {"hopper": 47.5, "halfcheetah": 40.0, "walker2d": 67.5}  # normalised scores, near D4RL medium


class ActorPolicy:
    """A SAC actor run in NumPy (a 256x256 MLP costs microseconds per step, torch's call overhead is ~10x that).

    Implements the evaluation protocol: `reset(n_envs)`, `act(obs (n, obs), reward (n,), done (n,)) -> (n, act)`.
    Sampled actions come from a NumPy generator seeded at construction, so collection is reproducible.
    """

    def __init__(self, path: str | Path, deterministic: bool = False, seed: int = 0):
        actor, self.meta = load_actor(path)
        self.path = Path(path)
        linears = [m for m in actor.net if hasattr(m, "weight")]
        self.layers = [
            (m.weight.detach().numpy().T.astype(np.float64), m.bias.detach().numpy().astype(np.float64))
            for m in linears
        ]
        self.scale = actor.act_scale.numpy().astype(np.float64)
        self.bias = actor.act_bias.numpy().astype(np.float64)
        self.deterministic = deterministic
        self.rng = np.random.default_rng(seed)

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        mean, log_std = np.split(x, 2, axis=-1)
        if self.deterministic:
            u = mean
        else:  # the same squashed Gaussian as agents.behaviour.sac.Actor
            log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (np.tanh(log_std) + 1)
            u = mean + np.exp(log_std) * self.rng.standard_normal(mean.shape)
        return (np.tanh(u) * self.scale + self.bias).astype(np.float32)


class UniformPolicy:
    """Uniform random actions in the env's box, from a seeded NumPy generator."""

    def __init__(self, env_id: str, seed: int = 0):
        space = make_env(env_id).action_space
        self.low, self.high = space.low, space.high
        self.rng = np.random.default_rng(seed)

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, (len(obs), len(self.low))).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Choosing checkpoints


def pick_checkpoints(
    evals: list[dict],
    env: str,
    replay_points: int = 8,
    measure: Callable[[dict], float] | None = None,
    candidates: int = 5,
) -> dict:
    """From a SAC run's evaluations choose medium (nearest the target), expert (best) and the replay series.

    SAC's own evaluations are a few deterministic episodes, while the recipes roll policies out with sampled
    actions; picking on them alone lands the medium data off target and the expert on a lucky evaluation. With
    ``measure`` (row -> normalised score measured the way the recipes act), medium is the one of the ``candidates``
    checkpoints nearest the target by SAC's evaluation whose measured score is nearest, and expert the best measured
    of the ``candidates`` best; those rows get "measured_normalized_score".

    Returns {"medium": row, "expert": row, "replay": [rows...]} where each row is an evals.jsonl entry with
    "normalized_score" added; the replay series is evenly spaced over the checkpoints before medium.
    """
    if not evals:
        raise ValueError("the SAC run has no evaluations yet; train longer (python -m agents.behaviour.sac ...)")
    key = d4rl_env_key(env)
    for r in evals:
        r["normalized_score"] = float(normalized_score(key, [r["return_mean"]])[0])
    target = MEDIUM_TARGET[key]
    near = sorted(evals, key=lambda r: abs(r["normalized_score"] - target))[: max(1, candidates)]
    top = sorted(evals, key=lambda r: -r["normalized_score"])[: max(1, candidates)]
    if measure is None:
        medium, expert = near[0], top[0]
    else:
        for r in {id(r): r for r in near + top}.values():
            r["measured_normalized_score"] = float(measure(r))
        medium = min(near, key=lambda r: abs(r["measured_normalized_score"] - target))
        expert = max(top, key=lambda r: r["measured_normalized_score"])
    before = [r for r in evals if r["step"] < medium["step"]]
    idx = np.unique(np.linspace(0, len(before) - 1, min(replay_points, len(before))).round().astype(int))
    return {"medium": medium, "expert": expert, "replay": [before[i] for i in idx] if before else []}


def measure_actor(path: str | Path, env_id: str, episodes: int = 10, deterministic: bool = False) -> dict:
    """Return mean/std and D4RL score of a SAC actor over `episodes` seeded episodes (sampled actions by default)."""
    from envs.evaluate import evaluate

    res = evaluate(
        ActorPolicy(path, deterministic=deterministic, seed=0),
        env_id,
        n_episodes=episodes,
        n_envs=min(episodes, 5),
        seed=0,
        score_reference="d4rl",
    )
    return {
        "return_mean": res.return_mean,
        "return_std": res.return_std,
        "normalized_score": res.normalized_mean,
        "episodes": episodes,
    }


def pick_from_run(sac_run: str | Path, env: str, episodes: int = 10) -> dict:
    """`pick_checkpoints` on a SAC run directory, re-measuring the candidates with sampled actions."""
    env_id = D4RL_ENV_IDS[d4rl_env_key(env)]
    return pick_checkpoints(
        read_evals(sac_run),
        env,
        measure=lambda row: measure_actor(Path(sac_run) / row["actor"], env_id, episodes)["normalized_score"],
    )


def ship(sac_run: str | Path, env: str, out_dir: Path = POLICY_DIR, episodes: int = 10) -> dict:
    """Copy the checkpoints the recipes need from a SAC run into `out_dir`, with returns re-measured here.

    Each shipped actor is evaluated over `episodes` episodes with sampled actions (as the recipes roll it out) and
    deterministically. Writes `<env>_<role>.safetensors` files and updates `out_dir/index.json`.
    """
    key = d4rl_env_key(env)
    env_id = D4RL_ENV_IDS[key]
    picks = pick_from_run(sac_run, key, episodes)
    cfg = json.loads((Path(sac_run) / "config.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[key] = {"sac_run_config": cfg, "policies": {}}
    roles = [("medium", picks["medium"]), ("expert", picks["expert"])]
    roles += [(f"replay_{i}", r) for i, r in enumerate(picks["replay"])]
    for role, row in roles:
        dst = out_dir / f"{key}_{role}.safetensors"
        shutil.copyfile(Path(sac_run) / row["actor"], dst)
        measured = {
            mode: measure_actor(dst, env_id, episodes, deterministic=mode == "deterministic")
            for mode in ("sampled", "deterministic")
        }
        index[key]["policies"][role] = {
            "file": dst.name,
            "sac_step": row["step"],
            "sac_eval_return": row["return_mean"],
            "sac_eval_normalized_score": row["normalized_score"],
            **measured,
        }
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True))
    return index[key]


# ---------------------------------------------------------------------------------------------------------------
# Building datasets


def _policy_file(key: str, role: str, sac_run: str | Path | None, picks: dict | None = None) -> tuple[Path, dict]:
    """The actor for a role, from a SAC run (`picks` from `pick_from_run`, made if None) or from the shipped files."""
    if sac_run is not None:
        row = (picks or pick_from_run(sac_run, key))[role]
        return Path(sac_run) / row["actor"], {
            "source": "sac_run",
            "sac_run": str(sac_run),
            "sha256": file_sha256(Path(sac_run) / row["actor"]),
            "sac_step": row["step"],
            "sac_eval_return": row["return_mean"],
            "sac_eval_normalized_score": row["normalized_score"],
            "sampled_normalized_score": row.get("measured_normalized_score"),
        }
    index_path = POLICY_DIR / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    if key not in index or role not in index[key]["policies"]:
        raise FileNotFoundError(
            f"no shipped {role} policy for {key} in {POLICY_DIR}; train one with "
            f"`python -m agents.behaviour.sac --env {D4RL_ENV_IDS[key]} --out sac_runs/{key}` and pass "
            f"--sac-run sac_runs/{key}"
        )
    info = index[key]["policies"][role]
    return POLICY_DIR / info["file"], {"source": "shipped", "sha256": file_sha256(POLICY_DIR / info["file"]), **info}


def dataset_stale_reason(spec: str, root: str | Path | None = None) -> str | None:
    """``envs.provenance.dataset_stale_reason`` against the policies shipped in ``POLICY_DIR``."""
    return provenance.dataset_stale_reason(spec, root, POLICY_DIR)


def stale_reason(recipe: dict, policy_dir: Path | None = None) -> str | None:
    """``envs.provenance.stale_reason`` (default: against the policies shipped in ``POLICY_DIR``)."""
    return provenance.stale_reason(recipe, Path(policy_dir or POLICY_DIR))


def _replay_from_buffer(sac_run: Path, steps: int) -> list[CollectedEpisode]:
    """The real SAC replay buffer's first `steps` transitions, split into episodes (the tail kept as truncated)."""
    buf = {
        k: np.load(sac_run / "buffer" / f"{k}.npy", mmap_mode="r")
        for k in ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")
    }
    ends = np.flatnonzero(buf["terminated"][:steps] | buf["truncated"][:steps])
    if len(ends) == 0 or ends[-1] != steps - 1:
        ends = np.append(ends, steps - 1)
    episodes, start = [], 0
    for e in ends:
        obs = np.concatenate([buf["obs"][start : e + 1], buf["next_obs"][e : e + 1]])
        term = bool(buf["terminated"][e])
        episodes.append(
            CollectedEpisode(
                obs, np.array(buf["actions"][start : e + 1]), np.array(buf["rewards"][start : e + 1]), term, not term
            )
        )
        start = e + 1
    return episodes


def replay_stretches(checkpoint_steps: list[int], warmup: int, medium_step: int) -> list[tuple[int, int, int | None]]:
    """The replay buffer's history [0, medium_step) cut into stretches (start, end, checkpoint step or None).

    Each stretch is replayed by the newest checkpoint at or before its start; None (uniform-random actions) during
    SAC's warm-up and before the first checkpoint.

    >>> replay_stretches([10, 30], warmup=5, medium_step=40)
    [(0, 5, None), (5, 10, None), (10, 30, 10), (30, 40, 30)]
    """
    cuts = sorted({0, warmup, medium_step} | {s for s in checkpoint_steps if warmup < s < medium_step})
    out = []
    for start, end in zip(cuts[:-1], cuts[1:]):
        done = [s for s in sorted(checkpoint_steps) if s <= start]
        out.append((start, end, done[-1] if done and start >= warmup else None))
    return out


def _replay_approximation(key: str, seed: int, size: int | None) -> tuple[list[CollectedEpisode], dict]:
    """Replay-buffer stand-in from the shipped checkpoint series (see the module docstring)."""
    index = json.loads((POLICY_DIR / "index.json").read_text())[key]
    pol = index["policies"]
    series = sorted((v for k, v in pol.items() if k.startswith("replay_")), key=lambda v: v["sac_step"])
    medium_step = pol["medium"]["sac_step"]
    warmup = index["sac_run_config"].get("learning_starts", 5000)
    stretches = replay_stretches([v["sac_step"] for v in series], warmup, medium_step)
    by_step = {v["sac_step"]: v for v in series}
    sources = [None if src is None else by_step[src] for _, _, src in stretches]
    bounds = [stretches[0][0]] + [end for _, end, _ in stretches]
    lengths = np.diff(bounds)
    total = int(lengths.sum())
    scale = 1.0 if size is None else size / total
    episodes, parts = [], []
    for i, (src, n) in enumerate(zip(sources, lengths)):
        n = max(1, int(round(n * scale)))
        if src is None:
            policy = UniformPolicy(D4RL_ENV_IDS[key], seed=seed + i)
        else:
            policy = ActorPolicy(POLICY_DIR / src["file"], seed=seed + i)
        episodes += rollout(policy, D4RL_ENV_IDS[key], n, seed=seed + 100_000 * (i + 1))
        parts.append(
            {
                "policy": "uniform-random" if src is None else src["file"],
                "sac_step": 0 if src is None else src["sac_step"],
                **({} if src is None else {"sha256": file_sha256(POLICY_DIR / src["file"])}),
                "transitions": n,
            }
        )
    return episodes, {
        "replay": "approximation from the shipped checkpoint series, not the real buffer",
        "parts": parts,
        "medium_sac_step": medium_step,
    }


def build(
    env: str,
    level: str,
    size: int | None = None,
    seed: int = 0,
    sac_run: str | Path | None = None,
    root: str | Path | None = None,
    overwrite: bool = False,
    name: str | None = None,
) -> tuple[str, Path]:
    """Build one dataset and write it as a Minari dataset. Returns (dataset id, path).

    `size` is the number of transitions (per part for medium-expert); None means the recipe's default: 1M as in
    D4RL for random/medium/expert, the buffer up to the medium checkpoint for medium-replay.
    """
    key = d4rl_env_key(env)
    if key not in D4RL_ENV_IDS:
        raise ValueError(f"no recipes for env {env!r}; choose one of {sorted(D4RL_ENV_IDS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if size is not None and size <= 0:
        raise ValueError(f"--size must be positive, got {size}")
    env_id = D4RL_ENV_IDS[key]
    n = size or 1_000_000
    t0 = time.time()
    recipe: dict = {
        "level": level,
        "env_id": env_id,
        "seed": seed,
        "algorithm": "SAC",
        "policy_dir": str(POLICY_DIR.resolve()),  # where envs.provenance checks the shipped policies it used
        "d4rl_default_size": 1_000_000 if level != "medium-replay" else "replay buffer",
    }
    if level == "random":
        episodes = rollout(UniformPolicy(env_id, seed), env_id, n, seed)
        recipe["algorithm"] = "uniform-random"
    elif level in ("medium", "expert"):
        path, info = _policy_file(key, level, sac_run)
        episodes = rollout(ActorPolicy(path, seed=seed), env_id, n, seed)
        recipe["policy"] = info
    elif level == "medium-expert":
        parts = {}
        episodes = []
        picks = pick_from_run(sac_run, key) if sac_run is not None else None
        for i, role in enumerate(("medium", "expert")):
            path, parts[role] = _policy_file(key, role, sac_run, picks)
            episodes += rollout(ActorPolicy(path, seed=seed + i), env_id, n, seed + 1_000_000 * i)
        recipe["policy"] = parts
    else:  # medium-replay
        if sac_run is not None:
            _, info = _policy_file(key, "medium", sac_run)
            steps = info["sac_step"] if size is None else min(size, info["sac_step"])
            episodes = _replay_from_buffer(Path(sac_run), steps)
            recipe["policy"] = {**info, "replay": "the real SAC replay buffer", "transitions": steps}
        else:
            episodes, recipe["policy"] = _replay_approximation(key, seed, size)
    recipe["transitions"] = int(sum(len(e) for e in episodes))
    recipe["episodes"] = len(episodes)
    recipe["build_time_s"] = round(time.time() - t0, 1)
    ds_id = name or dataset_id(env_id, level)
    path = write_dataset(ds_id, episodes, env_id, recipe, root=root, overwrite=overwrite)
    return ds_id, path


def add_collect_args(p: argparse.ArgumentParser) -> None:
    """Flags of `run_rl.py collect`."""
    p.add_argument("--env", required=True, help="halfcheetah, hopper or walker2d (or their -v5 ids)")
    p.add_argument("--level", required=True, choices=LEVELS, help="which D4RL-style recipe")
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="transitions (per part for medium-expert); default 1M as D4RL, the buffer for medium-replay",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the env resets and the action noise")
    p.add_argument(
        "--sac-run",
        default=None,
        help="take policies (and the real replay buffer) from this SAC run instead of the shipped ones",
    )
    p.add_argument("--root", default=None, help="Minari datasets root (default $MINARI_DATASETS_PATH or ~/.minari)")
    p.add_argument("--name", default=None, help="dataset id (default minrnn/<env>/<level>-v0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same id")


def run_collect(args: argparse.Namespace) -> str:
    """Build the dataset `args` asks for, print a summary and return its id."""
    t0 = time.time()
    ds_id, path = build(args.env, args.level, args.size, args.seed, args.sac_run, args.root, args.overwrite, args.name)
    meta = json.loads((path / "data" / "metadata.json").read_text())
    score = float(normalized_score(args.env, [meta["return_mean"]])[0])
    print(
        f"wrote {ds_id} ({meta['total_steps']} transitions, {meta['total_episodes']} episodes, "
        f"mean return {meta['return_mean']:.1f}, D4RL score {score:.1f}) to {path} in {time.time() - t0:.0f} s"
    )
    print(f"use it with: --dataset minari:{ds_id}")
    return ds_id


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description="Ship behaviour policies from a SAC run: python -m agents.behaviour.recipes "
        "ship --sac-run sac_runs/hopper --env hopper"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ship", help="copy a SAC run's medium/expert/replay checkpoints into agents/behaviour/policies")
    s.add_argument("--sac-run", required=True)
    s.add_argument("--env", required=True)
    s.add_argument("--episodes", type=int, default=10)
    c = sub.add_parser("collect", help="build a dataset (same as run_rl.py collect)")
    add_collect_args(c)
    a = ap.parse_args()
    if a.cmd == "ship":
        print(json.dumps(ship(a.sac_run, a.env, episodes=a.episodes), indent=2))
    else:
        run_collect(a)
