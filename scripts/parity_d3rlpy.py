"""The reference side of the DT parity check: d3rlpy's DecisionTransformer on a D4RL-layout HDF5 file.

Runs in its own virtual environment, because d3rlpy 2.8 pins an older Gymnasium than this project uses; it imports
nothing from this repository::

    python -m venv .venv-d3rlpy
    .venv-d3rlpy/bin/pip install torch==2.13.0 d3rlpy==2.8.1 "gymnasium[mujoco]" h5py
    .venv-d3rlpy/bin/python scripts/parity_d3rlpy.py --file data/halfcheetah-medium.hdf5 --env HalfCheetah-v5 \\
        --target 6000 --steps 3000 --eval-every 1000 --seed 0 --out runs/parity/d3rlpy-halfcheetah-seed0.jsonl

The settings are d3rlpy's own D4RL reproduction (github.com/takuseno/d3rlpy, reproductions/offline/
decision_transformer.py): batch 64, lr 1e-4, AdamW (weight decay 1e-4, grad-norm clip 0.25, 10k-step linear warm-up),
a one-layer 128-unit state encoder, standardised observations, rewards x 0.001, K=20, 3 layers, 1 head, dropout 0.1,
ReLU. Every ``--eval-every`` updates it plays ``--episodes`` episodes with d3rlpy's stateful wrapper (the last K steps
rerun at each action), episode k reset with seed ``eval_seed + k`` as ``envs.evaluate`` does, and appends one JSON
line: step, target, returns, D4RL-normalised mean. ``scripts/parity.py`` runs our side and tabulates both.

``--resume MODEL.d3 --start-step N`` continues a run from one of the checkpoints d3rlpy's logger writes every 100
updates (weights, AdamW state and the warm-up schedule's position are all in the file), so a 2,000-update run
extends to 5,000 by training 3,000 more updates rather than starting again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import d3rlpy
import gymnasium as gym
import h5py
import numpy as np
import torch

# D4RL reference returns (Fu et al. 2020, d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE).
D4RL_REF = {"halfcheetah": (-280.178953, 12135.0), "hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3)}


def load_file(path: str) -> d3rlpy.dataset.MDPDataset:
    with h5py.File(path, "r") as f:
        obs, act = f["observations"][:], f["actions"][:]
        rew, term, tout = f["rewards"][:], f["terminals"][:], f["timeouts"][:]
    return d3rlpy.dataset.MDPDataset(obs, act, rew, term.astype(np.float32), tout.astype(np.float32))


def make_dt(device: str) -> d3rlpy.algos.DecisionTransformer:
    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=64,
        learning_rate=1e-4,
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4,
            clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=10000),
        ),
        encoder_factory=d3rlpy.models.VectorEncoderFactory([128], exclude_last_activation=True),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        position_encoding_type=d3rlpy.PositionEncodingType.SIMPLE,
        context_size=20,
        num_heads=1,
        num_layers=3,
        max_timestep=1000,
    ).create(device=device)


def evaluate(algo, env_id: str, target: float, episodes: int, seed: int) -> list[float]:
    env = gym.make(env_id)
    returns = []
    for k in range(episodes):
        actor = algo.as_stateful_wrapper(target_return=target)
        obs, _ = env.reset(seed=seed + k)
        reward, total, done = 0.0, 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(actor.predict(obs, reward))
            reward = float(r)
            total += reward
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", required=True, help="D4RL-layout HDF5 file")
    p.add_argument("--env", required=True, help="Gymnasium id to evaluate on, e.g. HalfCheetah-v5")
    p.add_argument("--target", type=float, nargs="+", required=True, help="evaluation return targets")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="JSON-lines file to append to")
    p.add_argument("--log-dir", default=None, help="also write d3rlpy's CSV logs (loss per 100 updates) here")
    p.add_argument("--resume", default=None, help="a model_*.d3 file of this run's logs to continue from")
    p.add_argument("--start-step", type=int, default=0, help="with --resume: the updates that file had done")
    args = p.parse_args()
    if bool(args.resume) != (args.start_step > 0):
        p.error("--resume and --start-step go together (the checkpoint and the updates it had done)")
    if args.start_step >= args.steps:
        p.error(f"--start-step {args.start_step} is not below --steps {args.steps}: nothing to train")

    torch.set_num_threads(args.threads)
    # d3rlpy keeps no sampler state in its checkpoints: a resumed part gets its own seed, lest it redraw the
    # first part's batches.
    d3rlpy.seed(args.seed + 1_000_003 * args.start_step)
    ref_min, ref_max = next(v for k, v in D4RL_REF.items() if k in args.env.lower())
    dataset = load_file(args.file)
    algo = d3rlpy.load_learnable(args.resume, device="cpu:0") if args.resume else make_dt("cpu:0")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done_s = 0.0  # training seconds before --start-step, from the last line this run wrote
    if args.resume and out.exists():
        rows = map(json.loads, out.read_text().splitlines())
        done_s = max((row["wall_s"] for row in rows if row["step"] <= args.start_step), default=0.0)
    start = time.perf_counter()

    def callback(algo, epoch: int, step: int) -> None:
        step += args.start_step
        if step % args.eval_every:
            return
        train_s = done_s + time.perf_counter() - start
        for target in args.target:
            rets = evaluate(algo, args.env, target, args.episodes, args.eval_seed)
            score = 100 * (np.mean(rets) - ref_min) / (ref_max - ref_min)
            line = {"step": step, "target": target, "returns": rets, "score": float(score),
                    "seed": args.seed, "wall_s": round(train_s, 1), "agent": "d3rlpy-dt"}  # fmt: skip
            with out.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"step {step} target {target:g}: score {score:.1f}", flush=True)

    logger = d3rlpy.logging.FileAdapterFactory(args.log_dir) if args.log_dir else d3rlpy.logging.NoopAdapterFactory()
    # A resumed part logs to its own directory, "-from{N}", whose step numbers count from N.
    name = f"parity-seed{args.seed}" + (f"-from{args.start_step}" if args.start_step else "")
    algo.fit(dataset, n_steps=args.steps - args.start_step, n_steps_per_epoch=100, show_progress=False,
             experiment_name=name, with_timestamp=False, logger_adapter=logger, callback=callback)  # fmt: skip


if __name__ == "__main__":
    main()
