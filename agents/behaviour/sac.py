"""Soft Actor-Critic, the behaviour-policy learner that makes our offline datasets.

SAC with twin Q, automatic entropy tuning and the usual MuJoCo hyperparameters (Haarnoja et al. 2018, "Soft
Actor-Critic Algorithms and Applications", Table 1), read top to bottom like CleanRL's
`sac_continuous_action.py`, plus what a dataset factory needs:

- periodic deterministic evaluation, and an actor checkpoint (safetensors) stored with its evaluation return;
- a replay buffer kept on disk in order (memory-mapped), so the "medium-replay" recipe can take the buffer up to any
  checkpoint, and so an interrupted run resumes where it stopped;
- resumable after kill -9: the learner state is written atomically every `checkpoint_every` steps.

Run directory layout::

    RUN/config.json             the SACConfig
    RUN/state.pt                networks, optimisers, alpha, RNG states, step (torch.save of tensors only)
    RUN/buffer/*.npy            the replay buffer, memory-mapped, in collection order
    RUN/actors/step_XXXXXXX.safetensors   actor weights at each evaluation
    RUN/evals.jsonl             one line per evaluation: step, return mean/std, normalised score, actor file
    RUN/tb/                     TensorBoard events (losses/..., charts/..., eval/...)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from envs.make import make_env

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL's bounds for the Gaussian's log-std


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyperparameters of one SAC run. Defaults follow Haarnoja et al. 2018 (Table 1) for MuJoCo."""

    env_id: str = "Hopper-v5"  # Gymnasium id of the environment to learn
    total_steps: int = 1_000_000  # environment steps (one gradient update per step after learning_starts)
    learning_starts: int = 5_000  # uniform-random steps before learning (CleanRL uses 5e3)
    batch_size: int = 256  # minibatch of transitions per update
    gamma: float = 0.99  # discount
    tau: float = 0.005  # Polyak rate of the target critics
    actor_lr: float = 3e-4  # Adam learning rate of the actor
    critic_lr: float = 3e-4  # Adam learning rate of the twin critics
    alpha_lr: float = 3e-4  # Adam learning rate of log(alpha)
    hidden: int = 256  # width of both hidden layers of every MLP
    eval_every: int = 10_000  # steps between evaluations (each also stores an actor checkpoint)
    eval_episodes: int = 5  # deterministic evaluation episodes per evaluation
    checkpoint_every: int = 10_000  # steps between resumable learner checkpoints
    seed: int = 0  # seeds torch, numpy and the environment
    threads: int = 1  # torch intra-op threads (1 is fastest for 256-wide MLPs on a shared CPU)


def mlp(dim_in: int, dim_out: int, hidden: int) -> nn.Sequential:
    """Two hidden ReLU layers: (N, dim_in) -> (N, dim_out)."""
    return nn.Sequential(
        nn.Linear(dim_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim_out)
    )


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy. Actions are scaled to the env's box [low, high]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, act_low: np.ndarray, act_high: np.ndarray):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden)
        low, high = torch.as_tensor(act_low, dtype=torch.float32), torch.as_tensor(act_high, dtype=torch.float32)
        self.register_buffer("act_scale", (high - low) / 2)
        self.register_buffer("act_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, obs) -> mean (N, act), log_std (N, act) of the pre-squash Gaussian."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: action (N, act) in the env's box and its log-probability (N,)."""
        mean, log_std = self(obs)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        y = torch.tanh(u)
        # log N(u; mean, std) minus the log-det of the squash (SAC paper, appendix C)
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(self.act_scale * (1 - y.pow(2)) + 1e-6).sum(-1)
        return y * self.act_scale + self.act_bias, log_prob

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """obs (N, obs) numpy -> action (N, act) numpy; the tanh of the mean when deterministic."""
        x = torch.as_tensor(obs, dtype=torch.float32)
        if deterministic:
            return (torch.tanh(self(x)[0]) * self.act_scale + self.act_bias).numpy()
        return self.sample(x)[0].numpy()


class TwinQ(nn.Module):
    """Two Q networks evaluated as one batched ensemble (one bmm per layer instead of two Linear calls)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, n: int = 2):
        super().__init__()
        dims = [obs_dim + act_dim, hidden, hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers = [nn.Linear(d_in, d_out) for _ in range(n)]  # same init as nn.Linear
            self.weights.append(nn.Parameter(torch.stack([lay.weight.T.detach() for lay in layers])))
            self.biases.append(nn.Parameter(torch.stack([lay.bias.detach()[None] for lay in layers])))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs (N, obs), act (N, act) -> Q values (n, N)."""
        x = torch.cat([obs, act], -1).expand(len(self.weights[0]), -1, -1)  # (n, N, obs+act)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = F.relu(x)
        return x.squeeze(-1)


class ReplayBuffer:
    """Transitions in collection order, memory-mapped under `root` so they survive the process.

    Stores obs (N, obs), next_obs (N, obs), actions (N, act), rewards (N,), terminated (N,), truncated (N,);
    `truncated` is also set where a resume cut an episode short.
    """

    FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated", "truncated")

    def __init__(self, root: Path, capacity: int, obs_dim: int, act_dim: int):
        root.mkdir(parents=True, exist_ok=True)
        shapes = {
            "obs": (obs_dim,),
            "next_obs": (obs_dim,),
            "actions": (act_dim,),
            "rewards": (),
            "terminated": (),
            "truncated": (),
        }
        self.data = {}
        for k in self.FIELDS:
            path = root / f"{k}.npy"
            dtype = np.bool_ if k in ("terminated", "truncated") else np.float32
            shape = (capacity, *shapes[k])
            if path.exists():
                arr = np.lib.format.open_memmap(path, mode="r+")
                if len(arr) < capacity:  # a resumed run asked for more steps: grow the file
                    grown = np.lib.format.open_memmap(path.with_suffix(".grow"), mode="w+", dtype=dtype, shape=shape)
                    grown[: len(arr)] = arr
                    grown.flush()
                    del arr, grown
                    os.replace(path.with_suffix(".grow"), path)
                    arr = np.lib.format.open_memmap(path, mode="r+")
            else:
                arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            self.data[k] = arr
        self.size = 0

    def add(self, obs, next_obs, action, reward, terminated, truncated) -> None:
        i = self.size
        for k, v in zip(self.FIELDS, (obs, next_obs, action, reward, terminated, truncated)):
            self.data[k][i] = v
        self.size += 1

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, torch.Tensor]:
        idx = np.sort(rng.integers(0, self.size, batch))  # sorted: friendlier to the page cache
        return {k: torch.from_numpy(np.ascontiguousarray(self.data[k][idx])) for k in self.FIELDS}

    def flush(self) -> None:
        for v in self.data.values():
            v.flush()


class _Deterministic:
    """`actor` behind the reset/act protocol of `envs.evaluate`, acting with the tanh of its mean."""

    def __init__(self, actor: Actor):
        self.actor = actor

    def reset(self, n_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        return self.actor.act(obs, deterministic=True)


def evaluate_actor(actor: Actor, env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Deterministic returns (episodes,) of `actor`, episode k reset with seed `seed + k`."""
    from envs.evaluate import evaluate

    return evaluate(_Deterministic(actor), env_id, n_episodes=episodes, n_envs=1, seed=seed,
                    score_reference="none").returns  # fmt: skip


def _atomic_torch_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_actor(actor: Actor, path: Path, meta: dict) -> None:
    """Write the actor's weights and a JSON-able `meta` dict (strings only in safetensors' header)."""
    tmp = path.with_suffix(".tmp")
    tensors = {k: v.detach().contiguous() for k, v in actor.state_dict().items()}
    save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    os.replace(tmp, path)


def load_actor(path: str | Path) -> tuple[Actor, dict]:
    """Load an actor written by `save_actor`: returns (actor in eval mode, its metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actor file {path} does not exist; list shipped ones in agents/behaviour/policies/")
    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    for key in ("obs_dim", "act_dim", "hidden", "act_low", "act_high"):
        if key not in meta:
            raise ValueError(f"{path} is not an actor checkpoint: its metadata lacks '{key}'")
    actor = Actor(
        meta["obs_dim"], meta["act_dim"], meta["hidden"], np.array(meta["act_low"]), np.array(meta["act_high"])
    )
    actor.load_state_dict(load_file(str(path)))
    return actor.eval(), meta


@dataclasses.dataclass
class Learner:
    """The networks, their optimisers and the entropy temperature of one SAC run."""

    actor: Actor
    critic: TwinQ
    critic_target: TwinQ
    log_alpha: torch.Tensor
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    alpha_opt: torch.optim.Optimizer
    target_entropy: float

    @classmethod
    def build(cls, cfg: SACConfig, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray) -> Learner:
        actor = Actor(obs_dim, act_dim, cfg.hidden, low, high)
        critic = TwinQ(obs_dim, act_dim, cfg.hidden)
        critic_target = TwinQ(obs_dim, act_dim, cfg.hidden)
        critic_target.load_state_dict(critic.state_dict())
        log_alpha = torch.zeros(1, requires_grad=True)
        return cls(
            actor, critic, critic_target, log_alpha, torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr),
            torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr), torch.optim.Adam([log_alpha], lr=cfg.alpha_lr),
            target_entropy=-float(act_dim),
        )  # fmt: skip

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, st: dict) -> None:
        self.actor.load_state_dict(st["actor"])
        self.critic.load_state_dict(st["critic"])
        self.critic_target.load_state_dict(st["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(st["log_alpha"])
        self.actor_opt.load_state_dict(st["actor_opt"])
        self.critic_opt.load_state_dict(st["critic_opt"])
        self.alpha_opt.load_state_dict(st["alpha_opt"])


def update(learner: Learner, b: dict[str, torch.Tensor], cfg: SACConfig) -> dict[str, torch.Tensor]:
    """One SAC update on batch ``b``: twin critics, actor, temperature, Polyak target. Returns the losses/ scalars."""
    actor, critic = learner.actor, learner.critic
    alpha = learner.log_alpha.exp().detach()
    with torch.no_grad():  # soft Bellman target (SAC eq. 3)
        next_a, next_logp = actor.sample(b["next_obs"])
        q_next = learner.critic_target(b["next_obs"], next_a).min(0).values - alpha * next_logp
        target = b["rewards"] + cfg.gamma * (~b["terminated"]).float() * q_next
    q = critic(b["obs"], b["actions"])
    critic_loss = F.mse_loss(q, target.expand_as(q)) * 2  # sum over the two critics, as CleanRL
    learner.critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    learner.critic_opt.step()

    a, logp = actor.sample(b["obs"])
    for p in critic.parameters():
        p.requires_grad_(False)
    actor_loss = (alpha * logp - critic(b["obs"], a).min(0).values).mean()
    learner.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    learner.actor_opt.step()
    for p in critic.parameters():
        p.requires_grad_(True)

    alpha_loss = -(learner.log_alpha * (logp.detach() + learner.target_entropy)).mean()  # automatic entropy tuning
    learner.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    learner.alpha_opt.step()

    with torch.no_grad():
        for p, pt in zip(critic.parameters(), learner.critic_target.parameters()):
            pt.lerp_(p, cfg.tau)
    return {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha": alpha, "q_mean": q.mean()}


def resolve_config(cfg: SACConfig, run: Path) -> SACConfig:
    """``cfg``, or the config of the run already in ``run`` (with the larger ``total_steps``); written to
    config.json. ValueError if ``run`` holds another env or seed."""
    cfg_path = run / "config.json"
    if cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        if saved["env_id"] != cfg.env_id or saved["seed"] != cfg.seed:
            raise ValueError(
                f"{run} holds a run of {saved['env_id']} seed {saved['seed']}; "
                f"choose another directory for {cfg.env_id} seed {cfg.seed}"
            )
        cfg = dataclasses.replace(cfg, **{k: v for k, v in saved.items() if k != "total_steps"})
        cfg = dataclasses.replace(cfg, total_steps=max(cfg.total_steps, saved["total_steps"]))
    cfg_path.write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    return cfg


def evaluate_and_store(actor: Actor, cfg: SACConfig, run: Path, meta: dict, step: int) -> float:
    """Evaluate ``actor`` (deterministic episodes), store it under actors/ and log the row in evals.jsonl."""
    rets = evaluate_actor(actor, cfg.env_id, cfg.eval_episodes, seed=10_000 + step)
    name = f"step_{step:07d}.safetensors"
    mean, std = float(rets.mean()), float(rets.std())
    save_actor(actor, run / "actors" / name, {**meta, "step": step, "eval_return_mean": mean, "eval_return_std": std})
    with open(run / "evals.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "return_mean": mean, "return_std": std, "actor": f"actors/{name}"}) + "\n")
    return float(rets.mean())


def train(cfg: SACConfig, run_dir: str | Path, progress: bool = True) -> Path:
    """Train SAC into `run_dir`, resuming from its state.pt when one exists. Returns the run directory."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    run = Path(run_dir)
    (run / "actors").mkdir(parents=True, exist_ok=True)
    cfg = resolve_config(cfg, run)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env = make_env(cfg.env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    learner = Learner.build(cfg, obs_dim, act_dim, low, high)
    buffer = ReplayBuffer(run / "buffer", cfg.total_steps, obs_dim, act_dim)

    step, episode = 0, 0
    if (run / "state.pt").exists():
        st = torch.load(run / "state.pt", weights_only=True)  # tensors, ints and dicts only: no code runs
        learner.load_state_dict(st)
        torch.set_rng_state(st["torch_rng"])
        rng.bit_generator.state = st["np_rng"]
        step, episode = st["step"], st["episode"]
        buffer.size = step
        if step > 0 and not (buffer.data["terminated"][step - 1] or buffer.data["truncated"][step - 1]):
            buffer.data["truncated"][step - 1] = True  # the episode in flight at the kill is cut here
    meta = {
        "env_id": cfg.env_id, "obs_dim": obs_dim, "act_dim": act_dim, "hidden": cfg.hidden, "act_low": low.tolist(),
        "act_high": high.tolist(), "algorithm": "SAC", "seed": cfg.seed,
    }  # fmt: skip

    writer = SummaryWriter(str(run / "tb"), purge_step=step)
    obs, _ = env.reset(seed=cfg.seed + 1000 * episode)
    ep_ret, ep_len = 0.0, 0
    t0, sps_step = time.time(), step
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not progress, desc=cfg.env_id, mininterval=5)
    while step < cfg.total_steps:
        if step < cfg.learning_starts:
            action = rng.uniform(low, high).astype(np.float32)
        else:
            action = learner.actor.act(obs[None], deterministic=False)[0]
        next_obs, reward, term, trunc, _ = env.step(action)
        buffer.add(obs, next_obs, action, reward, term, trunc)
        ep_ret, ep_len, obs, step = ep_ret + reward, ep_len + 1, next_obs, step + 1
        if term or trunc:
            writer.add_scalar("charts/episodic_return", ep_ret, step)
            writer.add_scalar("charts/episodic_length", ep_len, step)
            episode += 1
            obs, _ = env.reset(seed=cfg.seed + 1000 * episode)
            ep_ret, ep_len = 0.0, 0

        if step >= cfg.learning_starts:
            losses = update(learner, buffer.sample(rng, cfg.batch_size), cfg)
            if step % 1000 == 0:
                for key, value in losses.items():
                    writer.add_scalar(f"losses/{key}", value.item(), step)
                writer.add_scalar("charts/SPS", (step - sps_step) / (time.time() - t0), step)
                t0, sps_step = time.time(), step

        if step % cfg.eval_every == 0:
            ret = evaluate_and_store(learner.actor, cfg, run, meta, step)
            writer.add_scalar("eval/return_mean", ret, step)
            bar.set_postfix(eval_return=f"{ret:.0f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
            buffer.flush()
            state = {"torch_rng": torch.get_rng_state(), "np_rng": rng.bit_generator.state, "step": step}
            _atomic_torch_save({**learner.state_dict(), **state, "episode": episode}, run / "state.pt")
            writer.flush()
        bar.update(1)
    bar.close()
    writer.close()
    env.close()
    return run


def read_evals(run_dir: str | Path) -> list[dict]:
    """The evaluations of a SAC run, in step order (deduplicated: a resumed run may re-log a step)."""
    path = Path(run_dir) / "evals.jsonl"
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["step"]] = r
    return [rows[k] for k in sorted(rows)]


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Train a SAC behaviour policy (resumable).")
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--eval-every", type=int, default=10_000)
    a = p.parse_args()
    train(
        SACConfig(
            env_id=a.env, total_steps=a.steps, seed=a.seed, eval_every=a.eval_every, checkpoint_every=a.eval_every
        ),
        a.out,
    )
