"""Resume state: what the training loop carries between steps, and how it goes into and out of a checkpoint.

Per rank (agents/distributed.py): the numpy sampler RNG, seeded with (seed, rank), and the torch RNGs (dropout),
seeded per rank so each rank draws its own masks. Rank 0 writes every rank's states into the checkpoint; resuming
with the same world size puts each rank's states back, so a killed and resumed run ends bit-identical (on CPU) to
an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from agents.checkpoint import Checkpoint, json_safe, save_checkpoint
from agents.config import TrainConfig, config_from_dict
from agents.distributed import DistInfo, fingerprint
from agents.preempt import Preempted, Preemption
from envs.store import StoreInfo

__all__ = [
    "FIXED_ON_RESUME",
    "Checkpointer",
    "CheckpointWriter",
    "TrainState",
    "check_in_sync",
    "check_resume",
    "config_changes",
    "record_changes",
    "derived_seed",
    "load_weights",
    "next_time_eval",
    "rank_state",
    "restore_rng_states",
    "start_state",
]


@dataclass
class TrainState:
    """Progress of one run: the loop updates it, the checkpoint stores it.

    >>> state = TrainState()
    >>> state.advance(0.5), state.record(41.0, {}), state.advance(0.5), state.record(38.5, {})
    (1, True, 2, False)
    >>> state.best, state.best_step, [h["step"] for h in state.history], state.train_time_s
    (41.0, 1, [1, 2], 1.0)
    """

    step: int = 0
    best: float = -math.inf  # best evaluation score so far
    best_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one evals.jsonl row per evaluation
    train_time_s: float = 0.0  # seconds spent in update steps (evaluation and checkpoints excluded)
    train_cpu_s: float = 0.0  # this process's CPU seconds in those update steps

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> TrainState:
        meta = ckpt.meta
        best = -math.inf if meta["best_score"] is None else meta["best_score"]
        cpu_s = meta.get("train_cpu_s", 0.0)  # absent in checkpoints written before the CPU clock existed
        return cls(meta["step"], best, meta["best_step"], meta["history"], meta["train_time_s"], cpu_s)

    def advance(self, seconds: float, cpu_seconds: float = 0.0) -> int:
        """Count one update that took ``seconds`` of wall time and ``cpu_seconds`` of CPU; returns the new step."""
        self.step += 1
        self.train_time_s += seconds
        self.train_cpu_s += cpu_seconds
        return self.step

    @property
    def train_min(self) -> float:
        """Wall-clock minutes spent in update steps so far."""
        return self.train_time_s / 60.0

    @property
    def cpu_min(self) -> float:
        """CPU minutes this process spent in update steps so far."""
        return self.train_cpu_s / 60.0

    def clock_min(self, clock: str) -> float:
        """Update minutes on ``clock`` ("wall" or "cpu", the config's ``budget_clock``)."""
        return self.cpu_min if clock == "cpu" else self.train_min

    def budget_used(self, clock: str, budget_min: float) -> float:
        """The fraction of a ``budget_min``-minute budget (``time_budget_min``) spent on ``clock``; 0 without one."""
        return self.clock_min(clock) / budget_min if budget_min > 0 else 0.0

    def summary(self, run_dir: Path, final_score: float) -> dict[str, Any]:
        """What results.json adds for a training run: the last evaluation (the final one: the primary number), the
        best, the mean of the last three (``mean_last3``: less noisy than one), history, training time."""
        last = self.history[-1] if self.history else {"step": self.step, "score": final_score}
        last3 = [h["score"] for h in self.history[-3:]] or [final_score]
        return {
            "train_time_s": self.train_time_s, "train_min": self.train_min, "cpu_min": self.cpu_min, "last": last,
            "best": {"step": self.best_step, "score": self.best}, "mean_last3": float(np.mean(last3)),
            "history": self.history, "run_dir": str(run_dir),
        }  # fmt: skip

    def record(self, score: float, row: dict[str, Any]) -> bool:
        """Add one evaluation at the current step; True when it is the best so far."""
        times = {"train_min": round(self.train_min, 4), "cpu_min": round(self.cpu_min, 4)}
        self.history.append({"step": self.step, **times, "score": score, **row})
        if score > self.best:
            self.best, self.best_step = score, self.step
            return True
        return False


#: Keys a resumed run cannot change besides the model's shape (``agents.trainer.MODEL_KEYS``): the data the first
#: steps trained on (its normalisation is in the weights), the seed (the checkpoint continues its RNG streams), the
#: returns' input scale, and what acts only when the weights are first made. Every other key takes effect.
FIXED_ON_RESUME: tuple[str, ...] = ("dataset", "env", "seed", "rtg_scale", "activation", "backbone_init", "forget_bias")


def check_resume(cfg: TrainConfig, meta: dict[str, Any], store: Any, where: str, model_keys: tuple[str, ...]) -> None:
    """ValueError naming every fixed key (``model_keys`` + ``FIXED_ON_RESUME``) whose value differs from the
    checkpoint's, a dataset whose content changed under the same name, or ``steps`` below the checkpoint's step.

    A key the checkpoint predates counts as its default, which is what it was trained with.
    """
    saved = config_from_dict(meta["config"])
    resolved = {"activation": TrainConfig.resolved_activation, "backbone_init": TrainConfig.resolved_backbone_init}
    model, fixed = [], []
    for key in model_keys + FIXED_ON_RESUME:
        if key == "env":  # "" means the dataset's env: compare the env each one resolves to
            new, old = store.env_id, meta["env_id"]
        else:
            get = resolved.get(key, lambda c, k=key: getattr(c, k))
            new, old = get(cfg), get(saved)
        if new != old:
            (model if key in model_keys else fixed).append(f"{key}={new!r} (checkpoint: {old!r})")
    parts = [f"a different model: {', '.join(model)}"] if model else []
    parts += [f"other data or seed: {', '.join(fixed)}"] if fixed else []
    if parts:
        raise ValueError(
            f"{where} was trained with {' and '.join(parts)}; drop those overrides to resume it (these keys are "
            "fixed for the life of a run), or train a new run with them (another --out)"
        )
    same_stats = np.allclose(np.asarray(meta["state_mean"]), store.state_mean, rtol=1e-6, atol=0) and np.allclose(
        np.asarray(meta["state_std"]), store.state_std, rtol=1e-6, atol=0
    )
    if not same_stats:
        raise ValueError(
            f"{where}: the dataset {cfg.dataset} has changed since the run started (its state mean/std differ from "
            "the checkpoint's, which the weights were trained with); restore that file to resume, or train a new "
            "run on it (another --out)"
        )
    if cfg.steps < meta["step"]:
        raise ValueError(
            f"{where} is already at step {meta['step']}; steps={cfg.steps} is below it (a run cannot go back): pass "
            f"--steps N with N > {meta['step']} to train further, or N = {meta['step']} to evaluate the final weights "
            "again"
        )


def config_changes(saved: dict[str, Any], cfg: TrainConfig) -> dict[str, list[Any]]:
    """{key: [checkpoint's value, new value]} for every key a resume changes (keys the checkpoint predates count
    as their default)."""
    old, new = config_from_dict(saved).to_dict(), cfg.to_dict()
    return {k: [old[k], new[k]] for k in new if old[k] != new[k]}


def record_changes(run_dir: Path, step: int, changes: dict[str, list[Any]]) -> None:
    """Say what a resume changed, at which step: one stderr line and one ``RUN/changes.jsonl`` row."""
    if not changes:
        return
    text = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
    print(f"resuming {run_dir} at step {step} with: {text}", file=sys.stderr)
    with open(run_dir / "changes.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "changes": changes}) + "\n")


def derived_seed(*entropy: int) -> int:
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


def next_time_eval(used_min: float, every_min: float, at_min: tuple[float, ...] = ()) -> float:
    """The update time (minutes) of the next time-triggered evaluation after ``used_min``: the next point of the
    ``eval_every_min`` grid or of the ``eval_at_min`` list, whichever comes first; inf when there is none.

    >>> next_time_eval(0.0, 1.5), next_time_eval(1.5, 1.5), next_time_eval(3.2, 1.5), next_time_eval(2.0, 0.0)
    (1.5, 3.0, 4.5, inf)
    >>> next_time_eval(0.0, 1.0, (0.25, 0.5)), next_time_eval(0.3, 1.0, (0.25, 0.5)), next_time_eval(0.6, 0.0, (0.5,))
    (0.25, 0.5, inf)
    """
    grid = (math.floor(used_min / every_min + 1e-9) + 1) * every_min if every_min > 0 else math.inf
    return min([grid] + [t for t in at_min if t > used_min + 1e-9])


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    """Put a checkpoint's weights into ``model``; ValueError naming the checkpoint when they do not fit it."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {where} does not fit the model: missing {missing[:4]}, unexpected {unexpected[:4]}; "
            "it was written for another backbone or layout"
        )


def check_in_sync(ranks: list[dict[str, Any]], step: int) -> None:
    """RuntimeError if the ranks' model fingerprints differ (DDP keeps them equal; this guards the checkpoint)."""
    prints = {r["fingerprint"] for r in ranks}
    if len(prints) > 1:
        raise RuntimeError(f"DDP ranks hold different weights at step {step}; the run cannot be checkpointed")


def restore_rng_states(
    ckpt: Checkpoint, seed: int, dist: DistInfo, device: torch.device, step: int
) -> np.random.Generator:
    """Put back this rank's sampler and torch RNG states from ``ckpt``; returns the sampler.

    With the world size the checkpoint was written with, every rank gets its own saved states (exact resume).
    With another world size there is no saved state for some ranks: each rank re-derives its streams from
    (seed, rank, step) instead, and the run continues correctly but not bit-identically to an uninterrupted one.
    """
    saved_world = ckpt.meta["world_size"]
    if saved_world == dist.world_size:
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt.meta["sampler_rng_per_rank"][dist.rank]
        torch.set_rng_state(ckpt.rng[f"torch_cpu.{dist.rank}"])
        if device.type == "cuda" and f"torch_cuda.{dist.rank}" in ckpt.rng:
            torch.cuda.set_rng_state(ckpt.rng[f"torch_cuda.{dist.rank}"], device)
        return rng
    if dist.is_main:
        print(
            f"warning: checkpoint written by {saved_world} process(es), resuming on {dist.world_size}: sampler and "
            "dropout RNGs re-derived from (seed, rank, step); the run will not match an uninterrupted one exactly",
            file=sys.stderr,
        )
    torch.manual_seed(derived_seed(seed, dist.rank, step))
    return np.random.default_rng(np.random.SeedSequence([seed, dist.rank, step]))


def start_state(
    ckpt: Checkpoint | None,
    seed: int,
    dist: DistInfo,
    device: torch.device,
) -> tuple[TrainState, np.random.Generator]:
    """(progress, sampler) to start the loop from: fresh, seeded with (seed, rank), or restored from ``ckpt``.

    Also seeds (or restores) this rank's torch RNG, so each rank of a multi-process run draws its own dropout masks
    (the weights themselves come from rank 0 when DDP wraps the model). The optimizer's state is restored where the
    optimizer is built (``agents.trainer.make_optimizer``).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, dist.rank]))
    if dist.is_distributed:
        torch.manual_seed(derived_seed(seed, dist.rank))
    if ckpt is None:
        return TrainState(), rng
    state = TrainState.from_checkpoint(ckpt)
    return state, restore_rng_states(ckpt, seed, dist, device, state.step)


class CheckpointWriter:
    """Rank 0's checkpoints of one run: ``step_<step>`` folders with everything a resume or an evaluation needs
    (agents/checkpoint.py), the weights, optimizer and scheduler as they are when ``save`` is called."""

    def __init__(
        self,
        run_dir: Path,
        cfg: TrainConfig,
        store: Any,
        targets: tuple[float, ...],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
    ) -> None:
        self.run_dir, self.model, self.optimizer, self.scheduler = run_dir, model, optimizer, scheduler
        info: StoreInfo = store.info()
        self.fixed = {  # what does not change during the run
            "config": cfg.to_dict(), "obs_dim": store.obs_dim, "act_dim": store.act_dim, "env_id": info.env_id,
            "store": info.to_dict(), "targets": list(targets), "state_mean": store.state_mean.tolist(),
            "state_std": store.state_std.tolist(),
        }  # fmt: skip

    def save(self, state: TrainState, ranks: list[dict[str, Any]], best: bool) -> None:
        """Checkpoint the current step with every rank's RNG states (``rank_state``); ``best`` also moves "best"."""
        meta = {
            "step": state.step, **self.fixed, "scheduler": json_safe(self.scheduler.state_dict()),  # float lrs
            "world_size": len(ranks),
            "sampler_rng_per_rank": [r["sampler"] for r in ranks],
            "best_score": state.best if state.best > -math.inf else None, "best_step": state.best_step,
            "history": state.history, "train_time_s": state.train_time_s, "train_cpu_s": state.train_cpu_s,
        }  # fmt: skip
        rng = {
            f"{k}.{r}": v
            for r, rk in enumerate(ranks)
            for k, v in rk.items()
            if k.startswith("torch_") and v is not None
        }
        pointers = ("latest", "best") if best else ("latest",)
        name = f"step_{state.step:07d}"
        save_checkpoint(
            self.run_dir, name, self.model.state_dict(), meta, self.optimizer.state_dict(), rng, pointers=pointers
        )


@dataclass
class Checkpointer:
    """Every rank's part in checkpointing the run being trained: its RNG states (and, in a multi-process run, its
    weights' fingerprint) are gathered to rank 0, whose ``writer`` saves them. Each method is a collective: every
    rank calls it, and the other ranks wait while rank 0 writes."""

    rng: np.random.Generator
    device: torch.device
    model: torch.nn.Module
    dist: DistInfo
    writer: CheckpointWriter | None  # rank 0's; None on the other ranks

    def _gather(self) -> list[dict[str, Any]]:
        return self.dist.gather(rank_state(self.rng, self.device, self.model if self.dist.is_distributed else None))

    def save(self, state: TrainState, save: bool = True, best: bool = False) -> None:
        """Checkpoint the current step when ``save``, and as "best" too when ``best`` (the evaluation improved);
        with neither, only check that the ranks' weights agree."""
        ranks = self._gather()
        if self.writer is not None:
            check_in_sync(ranks, state.step)
            if save or best:
                self.writer.save(state, ranks, best=best)
        self.dist.barrier()

    def save_and_exit(self, stop: Preemption, state: TrainState, log: Any) -> NoReturn:
        """After a pre-emption signal: checkpoint the current step, flush TensorBoard (``log``: rank 0's RunLog),
        raise Preempted. No results.json: the run is unfinished, and ``--resume`` (or a sweep) continues it."""
        ranks = self._gather()
        if self.writer is not None and log is not None:
            self.writer.save(state, ranks, best=False)
            log.writer.flush()
        self.dist.barrier()
        raise Preempted(stop.signal_name, state.step, stop.exit_code)
