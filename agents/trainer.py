"""The training loop for every Decision agent: sample -> loss -> step -> log -> evaluate -> checkpoint.

One flat function, ``train``, for all backbones and layouts (CORL algorithms/offline/dt.py keeps the same shape).
Everything it needs to resume is in the checkpoint (agents/checkpoint.py): on CPU a run killed and resumed
ends with bit-identical weights to an uninterrupted one.

Run directory layout::

    RUN/config.yaml        the resolved TrainConfig (usable as --config)
    RUN/dataset.json       summary of the dataset trained on
    RUN/results.json       final evaluation (see ``results_dict``), best and last scores
    RUN/evals.jsonl        one line per evaluation
    RUN/tb/                TensorBoard events (train/..., perf/..., eval/..., hparams)
    RUN/checkpoints/       see agents/checkpoint.py

Multi-process training (``torchrun``, agents/distributed.py): the model is wrapped in DistributedDataParallel,
each rank samples its own batches (sampler seeded with (seed, rank)), gradients are averaged, so the effective
batch is ``batch_size x world_size``. Rank 0 alone logs, evaluates and checkpoints; the other ranks wait for it at
each evaluation/checkpoint step. Checkpoints hold every rank's sampler and torch RNG state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from agents.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from agents.config import TrainConfig, config_from_dict, default_targets
from agents.decision import DecisionModel, masked_mse
from agents.distributed import DistInfo, fingerprint, resolve_device
from agents.policy import DecisionPolicy

__all__ = [
    "DistInfo",
    "MODEL_KEYS",
    "build_model",
    "evaluate_model",
    "load_model",
    "prepare_run_dir",
    "resolve_device",
    "sample_batch",
    "train",
]

#: Config keys that fix the model's shape; a checkpoint can only be resumed or loaded with the same values.
MODEL_KEYS: tuple[str, ...] = ("backbone", "layout", "dim", "depth", "n_heads", "max_ep_len")


# --- model -----------------------------------------------------------------------------------------------------
def backbone_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Extra arguments for ``minrnn.build_backbone``: attention heads (transformer) and the scan back-end."""
    return {"n_heads": cfg.n_heads, "backend": cfg.scan_backend}


def build_model(
    cfg: TrainConfig, obs_dim: int, act_dim: int, state_mean: Any = None, state_std: Any = None
) -> DecisionModel:
    """The DecisionModel a config describes."""
    return DecisionModel(
        obs_dim, act_dim, backbone=cfg.backbone, layout=cfg.layout, dim=cfg.dim, depth=cfg.depth,
        dropout=cfg.dropout, max_ep_len=cfg.max_ep_len, rtg_scale=cfg.rtg_scale, state_mean=state_mean,
        state_std=state_std, **backbone_kwargs(cfg),
    )  # fmt: skip


def load_model(path: str | Path, which: str = "latest") -> tuple[DecisionModel, TrainConfig, dict[str, Any]]:
    """(model in eval mode, its config, the checkpoint's state.json) from a run directory or checkpoint folder."""
    ckpt = load_checkpoint(path, which)
    cfg = config_from_dict(ckpt.meta["config"])
    model = build_model(cfg, ckpt.meta["obs_dim"], ckpt.meta["act_dim"])
    _load_weights(model, ckpt.model, ckpt.path)
    return model.eval(), cfg, dict(ckpt.meta, checkpoint_path=str(ckpt.path))


def _load_weights(model: torch.nn.Module, weights: dict[str, Tensor], where: Path) -> None:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {where} does not fit the model: missing {missing[:4]}, unexpected {unexpected[:4]}; "
            "it was written for another backbone or layout"
        )


# --- data ------------------------------------------------------------------------------------------------------
def window_steps(cfg: TrainConfig) -> int:
    """Steps per sampled sequence (including a burn-in prefix)."""
    if cfg.train_mode == "segments":
        return cfg.segment_len
    if cfg.train_mode == "burn_in":
        return cfg.burn_in + cfg.context_len
    return cfg.context_len


def sample_burn_in(store: Any, batch_size: int, K: int, burn_in: int, rng: np.random.Generator) -> dict:
    """Windows of K steps starting uniformly in each episode (drawn in proportion to length, as DT), each
    preceded by up to ``burn_in`` earlier steps: shape (B, burn_in + K). Steps before the episode start are
    left padding; steps past its end are right padding (mask False, zeros)."""
    ep = store.episode_of_step[rng.integers(0, store.num_transitions, size=batch_size)]  # (B,)
    lengths = store.episode_lengths[ep]
    s = np.floor(rng.random(batch_size) * lengths).astype(np.int64)  # window start
    rel = s[:, None] - burn_in + np.arange(burn_in + K)[None, :]  # (B, L) step within the episode
    mask = (rel >= 0) & (rel < lengths[:, None])
    rel = np.where(mask, rel, 0)
    flat = store.episode_starts[ep][:, None] + rel
    batch = {
        "states": store.observations[flat],
        "actions": store.actions[flat],
        "rewards": store.rewards[flat],
        "rtg": store.rtg[flat],
    }
    for value in batch.values():
        value[~mask] = 0.0
    batch["timesteps"] = rel.astype(np.int64)
    batch["mask"] = mask
    return batch


def sample_batch(store: Any, cfg: TrainConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One training batch for ``cfg.train_mode``; see TrainConfig.train_mode."""
    B, K = cfg.batch_size, cfg.context_len
    if cfg.train_mode == "window":
        return store.sample_windows(B, K, rng, start="random")
    if cfg.train_mode == "episode_start":
        return store.sample_windows(B, K, rng, start="episode")
    if cfg.train_mode == "segments":
        return store.sample_segments(B, cfg.segment_len, rng, start="episode")
    return sample_burn_in(store, B, K, cfg.burn_in, rng)


def to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}


def compute_loss(model: torch.nn.Module, b: dict[str, Tensor], cfg: TrainConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(masked MSE, predicted actions (B, K, act), mask (B, K)) for one batch."""
    keys = ("states", "actions", "rtg", "timesteps", "mask")
    if cfg.train_mode != "burn_in":
        pred, _ = model(*(b[k] for k in keys))
        return masked_mse(pred, b["actions"], b["mask"]), pred, b["mask"]
    n = cfg.burn_in
    pre = {k: b[k][:, :n] for k in keys}
    win = {k: b[k][:, n:] for k in keys}
    with torch.no_grad():  # R2D2-style burn-in: run the recurrence over the prefix without gradient
        _, state = model(*(pre[k] for k in keys))
    prev_action = pre["actions"][:, -1]  # a_{t-1} of the window's first step (zero if it is padding)
    pred, _ = model(*(win[k] for k in keys), state=state, prev_action=prev_action)
    return masked_mse(pred, win["actions"], win["mask"]), pred, win["mask"]


# --- evaluation ------------------------------------------------------------------------------------------------
def evaluate_model(
    model: DecisionModel,
    cfg: TrainConfig,
    store_info: dict[str, Any],
    targets: tuple[float, ...],
    episodes: int | None = None,
    n_envs: int | None = None,
    seed: int | None = None,
    acting_mode: str | None = None,
    record_actions: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` once per target with ``envs.evaluate``. The first target is the headline.

    Returns a dict: ``per_target`` {str(target): EvalResult.to_dict()}, the headline's ``summary``, and
    ``actions`` (recorded actions of the first target, or None).
    """
    from envs import evaluate

    mode = acting_mode or cfg.resolved_acting_mode()
    per_target, actions = {}, None
    was_training = model.training
    for i, target in enumerate(targets):
        policy = DecisionPolicy(model, target, mode, cfg.context_len, record_actions=record_actions and i == 0)
        res = evaluate(
            policy, store_info["env_id"], n_episodes=episodes or cfg.eval_episodes,
            n_envs=n_envs or cfg.eval_envs, seed=cfg.eval_seed if seed is None else seed,
            score_reference=store_info["score_reference"], max_steps=cfg.eval_max_steps,
            ref_min=store_info.get("ref_min"), ref_max=store_info.get("ref_max"), vector=cfg.eval_vector,
        )  # fmt: skip
        per_target[_target_key(target)] = dict(res.to_dict(), target_return=float(target), acting_mode=mode)
        if i == 0 and record_actions and policy.actions_taken:
            actions = np.concatenate(policy.actions_taken)
    model.train(was_training)
    head = per_target[_target_key(targets[0])]
    return {"per_target": per_target, "summary": head, "actions": actions}


def _target_key(target: float) -> str:
    return f"{target:g}"


def score_of(summary: dict[str, Any]) -> float:
    """The number "best" compares: the normalised score, or the return when there is no reference."""
    score = summary["normalized_mean"]
    return summary["return_mean"] if score is None or math.isnan(score) else score


def warn_if_stale(spec: str) -> None:
    """Tell the user (stderr) when a dataset made by `run_rl.py collect` predates the policies shipped now."""
    from agents.recipes import dataset_stale_reason

    reason = dataset_stale_reason(spec)
    if reason:
        print(
            f"warning: {spec} is out of date with agents/policies ({reason}); training on it anyway. Rebuild it "
            "with the same `run_rl.py collect` command plus --overwrite to get the data the recipes make now.",
            file=sys.stderr,
        )


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Where a number was measured: CPU model and cores, torch version and threads, and the GPU if one was used."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def results_dict(
    cfg: TrainConfig, evaluation: dict[str, Any], steps: int, wall_time_s: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """The results.json schema shared by train and eval (README: "results.json")."""
    head = evaluation["summary"]
    return {
        "normalized_score_mean": head["normalized_mean"],
        "normalized_score_std": head["normalized_std"],
        "return_mean": head["return_mean"],
        "return_std": head["return_std"],
        "episodes": head["n_episodes"],
        "score_reference": head["score_reference"],
        "steps": steps,
        "wall_time_s": wall_time_s,
        "backbone": cfg.backbone,
        "acting_mode": head["acting_mode"],
        "layout": cfg.layout,
        "train_mode": cfg.train_mode,
        "target_return": head["target_return"],
        "env_id": head["env_id"],
        "dataset": cfg.dataset,
        "batch_size": cfg.batch_size,
        "context_len": cfg.context_len,
        "machine": machine_info(cfg.device),
        "eval_seed": head["seed"],
        "eval_envs": head["n_envs"],
        "per_target": evaluation["per_target"],
        **extra,
    }


# --- run directory -------------------------------------------------------------------------------------------
def prepare_run_dir(run_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create or reuse ``run_dir``; never replace an existing run without ``overwrite``."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: pick one")
    exists = run_dir.exists() and any(run_dir.iterdir()) if run_dir.is_dir() else run_dir.exists()
    if resume:
        if not (run_dir / "checkpoints" / "latest").is_file():
            raise FileNotFoundError(
                f"--resume: no checkpoint in {str(run_dir)!r} (expected {run_dir}/checkpoints/latest); "
                "start a new run without --resume"
            )
        return run_dir
    if exists:
        if not overwrite:
            raise FileExistsError(
                f"run directory {str(run_dir)!r} already exists; pass --resume to continue it, --overwrite to "
                "replace it, or choose another --out"
            )
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
        else:
            run_dir.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write to run directory {str(run_dir)!r} ({err.strerror}); choose another --out"
        ) from None
    return run_dir


def check_same_model(cfg: TrainConfig, saved: dict[str, Any], where: str) -> None:
    """ValueError naming every model-shaping key whose value differs from the checkpoint's."""
    diff = [
        f"{k}={getattr(cfg, k)!r} (checkpoint: {saved.get(k)!r})" for k in MODEL_KEYS if saved.get(k) != getattr(cfg, k)
    ]
    if diff:
        raise ValueError(
            f"{where} was trained with a different model: {', '.join(diff)}; drop those overrides to resume it"
        )


# --- TensorBoard ---------------------------------------------------------------------------------------------
def log_eval(writer: Any, evaluation: dict[str, Any], best: float, step: int) -> None:
    head = evaluation["summary"]
    writer.add_scalar("eval/return_mean", head["return_mean"], step)
    writer.add_scalar("eval/return_std", head["return_std"], step)
    writer.add_scalar("eval/normalized_score", head["normalized_mean"], step)
    writer.add_scalar("eval/normalized_score_best", best, step)
    writer.add_scalar("eval/episode_length", float(np.mean(head["lengths"])), step)
    writer.add_scalar("perf/eval_time_s", sum(r["wall_time_s"] for r in evaluation["per_target"].values()), step)
    for key, res in evaluation["per_target"].items():
        writer.add_scalar(f"eval/target_{key}/return_mean", res["return_mean"], step)
        writer.add_scalar(f"eval/target_{key}/normalized_score", res["normalized_mean"], step)
        writer.add_scalar(f"eval/target_{key}/episode_length", float(np.mean(res["lengths"])), step)
    if evaluation["actions"] is not None:
        writer.add_histogram("eval/actions", evaluation["actions"], step)


def hparams_of(cfg: TrainConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, tuple) else v) for k, v in cfg.to_dict().items() if not isinstance(v, list)}


# --- the loop ------------------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dist: DistInfo | None = None,
    store: Any = None,
) -> dict[str, Any]:
    """Train a Decision agent as ``cfg`` says, evaluating and checkpointing into ``run_dir``; returns results.json.

    Args:
        cfg: the validated config.
        run_dir: run directory; must not exist (or be empty) unless ``resume`` or ``overwrite``.
        resume: continue from ``run_dir``'s latest checkpoint (same step, optimizer, scheduler, RNG, sampler).
        overwrite: delete an existing ``run_dir`` first.
        dist: this process's place in a multi-process run (default: a single process); the process group must
            already be initialised (``agents.distributed.process_group``). Ranks != 0 return {}.
        store: an already loaded TrajectoryStore (default: ``envs.load_dataset(cfg.dataset, cfg.env)``).
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from envs import load_dataset

    dist = dist or DistInfo()
    run_dir = Path(run_dir)
    error = None
    try:  # setup: anything here can fail on user input; dist.agree below stops every rank with one message
        cfg = cfg.validate()
        if not cfg.dataset and store is None:
            raise ValueError("no dataset: pass --dataset minari:<id> or d4rl:<file.hdf5> (see `run_rl.py datasets`)")
        torch.set_num_threads(cfg.threads or dist.default_threads())
        device = resolve_device(cfg.device, dist)
        torch.manual_seed(cfg.seed)
        store = store if store is not None else load_dataset(cfg.dataset, env_id=cfg.env or None)
        if dist.is_main:
            run_dir = prepare_run_dir(run_dir, resume, overwrite)
            warn_if_stale(cfg.dataset)
        targets = cfg.target_returns or default_targets(store.env_id)
        model = build_model(cfg, store.obs_dim, store.act_dim, store.state_mean, store.state_std).to(device)
        ckpt = load_checkpoint(run_dir) if resume else None
        if ckpt is not None:
            check_same_model(cfg, ckpt.meta["config"], str(run_dir))
            _load_weights(model, ckpt.model, ckpt.path)
    except Exception as err:
        error = err
    dist.agree(error)
    store_info = {
        "env_id": store.env_id, "score_reference": store.score_reference,
        "ref_min": getattr(store, "ref_min", None), "ref_max": getattr(store, "ref_max", None),
    }  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    # linear warm-up (DT gym/experiment.py): lr * min((step + 1) / warmup, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / max(cfg.warmup_steps, 1), 1.0))
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, dist.rank]))
    if dist.is_distributed:  # own dropout masks per rank (the weights come from rank 0 when DDP wraps the model)
        torch.manual_seed(_derived_seed(cfg.seed, dist.rank))
    step, best, history, train_time = 0, -math.inf, [], 0.0
    best_step = None

    if ckpt is not None:
        optimizer.load_state_dict(ckpt.optimizer)
        scheduler.load_state_dict(ckpt.meta["scheduler"])
        step, best_step = ckpt.meta["step"], ckpt.meta["best_step"]
        rng = restore_rng_states(ckpt, cfg, dist, device, step) or rng
        best = -math.inf if ckpt.meta["best_score"] is None else ckpt.meta["best_score"]
        history, train_time = ckpt.meta["history"], ckpt.meta["train_time_s"]
        # evaluations logged after that checkpoint were lost with the killed process: rewrite the log to match
        if dist.is_main:
            atomic_write_text(run_dir / "evals.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    train_model: torch.nn.Module = model
    if dist.is_distributed:  # broadcasts rank 0's weights; backward averages gradients over the ranks
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    writer = None
    if dist.is_main:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_write_text(run_dir / "dataset.json", json.dumps(store.summary(), indent=1))
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1 if resume else None)

    def checkpoint_meta(ranks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "step": step, "config": cfg.to_dict(), "obs_dim": store.obs_dim, "act_dim": store.act_dim,
            "env_id": store.env_id, "store": store_info, "targets": list(targets),
            "state_mean": store.state_mean.tolist(), "state_std": store.state_std.tolist(),
            "scheduler": scheduler.state_dict(), "sampler_rng": ranks[0]["sampler"],
            "world_size": dist.world_size, "sampler_rng_per_rank": [r["sampler"] for r in ranks],
            "best_score": best if best > -math.inf else None, "best_step": best_step, "history": history,
            "train_time_s": train_time,
        }  # fmt: skip

    def save(ranks: list[dict[str, Any]], pointers: tuple[str, ...]) -> None:
        rng_tensors = {"torch_cpu": ranks[0]["torch_cpu"].clone()}  # rank 0 (format 1); safetensors forbids aliases
        for r, state in enumerate(ranks):
            rng_tensors.update({f"{k}.{r}": v for k, v in state.items() if k.startswith("torch_") and v is not None})
        save_checkpoint(
            run_dir, f"step_{step:07d}", model.state_dict(), checkpoint_meta(ranks), optimizer.state_dict(),
            rng_tensors, pointers=pointers,
        )  # fmt: skip

    seq_tokens = window_steps(cfg) * cfg.tokens_per_step * cfg.batch_size * dist.world_size  # tokens per update
    bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and dist.is_main), dynamic_ncols=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    model.train()
    t_log, steps_since_log, loss_sum = time.perf_counter(), 0, 0.0
    evaluation = None
    while step < cfg.steps:
        t0 = time.perf_counter()
        # sample -> loss -> step
        batch = to_tensors(sample_batch(store, cfg, rng), device)
        with autocast:
            loss, pred, mask = compute_loss(train_model, batch, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients averaged over the ranks here
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        scheduler.step()
        step += 1
        train_time += time.perf_counter() - t0
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {step}: lower --lr, keep --grad-clip > 0, or check the data"
            )
        loss_sum, steps_since_log = loss_sum + loss.item(), steps_since_log + 1
        bar.update(1)

        # log (the loss is averaged over the ranks: every rank takes part)
        if step % max(cfg.log_every, 1) == 0 or step == cfg.steps:
            mean_loss = dist.all_mean(loss_sum / steps_since_log)
            if dist.is_main:
                elapsed = time.perf_counter() - t_log
                writer.add_scalar("train/loss", mean_loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("perf/steps_per_s", steps_since_log / elapsed, step)
                writer.add_scalar("perf/tokens_per_s", steps_since_log * seq_tokens / elapsed, step)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            t_log, steps_since_log, loss_sum = time.perf_counter(), 0, 0.0
        if dist.is_main and cfg.histogram_every and step % cfg.histogram_every == 0:
            writer.add_histogram("train/action_pred", pred.detach().float()[mask].cpu(), step)
            writer.add_histogram("train/action_data", batch["actions"][:, -mask.shape[1] :][mask].cpu(), step)

        eval_due = step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)
        save_due = step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
        if not (eval_due or save_due):
            continue
        # evaluate (rank 0; the other ranks wait in dist.gather below)
        improved = False
        if dist.is_main and eval_due:
            t_eval = time.perf_counter()
            evaluation = evaluate_model(model, cfg, store_info, targets, record_actions=True)
            t_log += time.perf_counter() - t_eval  # keep evaluation out of perf/steps_per_s
            score = score_of(evaluation["summary"])
            if score > best:
                best, best_step, improved = score, step, True
            history.append({"step": step, "score": score, **_brief(evaluation)})
            log_eval(writer, evaluation, best, step)
            with open(run_dir / "evals.jsonl", "a") as f:
                f.write(json.dumps(history[-1]) + "\n")
            bar.write(f"step {step}: {_brief_text(evaluation)} (best {best:.1f} at step {best_step})")

        # checkpoint (also whenever the evaluation score improved, so that "best" holds those weights)
        ranks = dist.gather(rank_state(rng, device, model if dist.is_distributed else None))
        if dist.is_main:
            check_in_sync(ranks, step)
            if save_due or improved:
                save(ranks, ("latest", "best") if improved else ("latest",))
        dist.barrier()  # the other ranks wait here while rank 0 saves
    bar.close()

    if not dist.is_main:
        return {}
    if evaluation is None:  # resumed a finished run: evaluate the final weights again
        evaluation = evaluate_model(model, cfg, store_info, targets)
    last = history[-1] if history else {"step": step, "score": score_of(evaluation["summary"])}
    extra = {
        "train_time_s": train_time, "last": last, "best": {"step": best_step, "score": best},
        "history": history, "run_dir": str(run_dir),
    }  # fmt: skip
    results = results_dict(cfg, evaluation, step, train_time, extra)
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=1))
    writer.add_hparams(
        hparams_of(cfg),
        {"hparam/score_last": last["score"], "hparam/score_best": best, "hparam/return_last": results["return_mean"]},
        run_name=".",
    )
    writer.close()
    return results


# --- per-rank RNG state ------------------------------------------------------------------------------------------
def _derived_seed(*entropy: int) -> int:
    """A 32-bit torch seed from integers (numpy SeedSequence: distinct inputs give unrelated streams)."""
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def rank_state(rng: np.random.Generator, device: torch.device, model: torch.nn.Module | None) -> dict[str, Any]:
    """This rank's RNG states (sampler, torch CPU, torch CUDA) and, when given, the model's fingerprint."""
    return {
        "sampler": rng.bit_generator.state,
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "fingerprint": None if model is None else fingerprint(model),
    }


def check_in_sync(ranks: list[dict[str, Any]], step: int) -> None:
    """RuntimeError if the ranks' model fingerprints differ (DDP keeps them equal; this guards the checkpoint)."""
    prints = {r["fingerprint"] for r in ranks}
    if len(prints) > 1:
        raise RuntimeError(f"DDP ranks hold different weights at step {step}; the run cannot be checkpointed")


def restore_rng_states(
    ckpt: Any, cfg: TrainConfig, dist: DistInfo, device: torch.device, step: int
) -> np.random.Generator | None:
    """Put back this rank's sampler and torch RNG states from ``ckpt``; returns the sampler.

    With the world size the checkpoint was written with, every rank gets its own saved states (exact resume).
    With another world size there is no saved state for some ranks: each rank re-derives its streams from
    (seed, rank, step) instead, and the run continues correctly but not bit-identically to an uninterrupted one.
    """
    meta, saved_world = ckpt.meta, ckpt.meta.get("world_size", 1)
    if saved_world == dist.world_size:
        per_rank = meta.get("sampler_rng_per_rank") or [meta["sampler_rng"]]
        rng = np.random.default_rng()
        rng.bit_generator.state = per_rank[dist.rank]
        torch.set_rng_state(ckpt.rng.get(f"torch_cpu.{dist.rank}", ckpt.torch_rng))
        if device.type == "cuda" and f"torch_cuda.{dist.rank}" in ckpt.rng:
            torch.cuda.set_rng_state(ckpt.rng[f"torch_cuda.{dist.rank}"], device)
        return rng
    if dist.is_main:
        print(
            f"warning: checkpoint written by {saved_world} process(es), resuming on {dist.world_size}: sampler and "
            "dropout RNGs re-derived from (seed, rank, step); the run will not match an uninterrupted one exactly",
            file=sys.stderr,
        )
    torch.manual_seed(_derived_seed(cfg.seed, dist.rank, step))
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, dist.rank, step]))


def _brief(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"return_mean": r["return_mean"], "normalized_mean": r["normalized_mean"]}
        for key, r in evaluation["per_target"].items()
    }


def _brief_text(evaluation: dict[str, Any]) -> str:
    return ", ".join(
        f"target {k}: return {r['return_mean']:.1f}, score {r['normalized_mean']:.1f}"
        for k, r in evaluation["per_target"].items()
    )


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``dataclasses.replace`` plus validation."""
    return dataclasses.replace(cfg, **changes).validate()
