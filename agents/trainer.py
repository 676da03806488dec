"""The training loop for every Decision agent: sample -> loss -> step -> log -> evaluate -> checkpoint.

One flat function, ``train``, for all backbones and layouts (CORL algorithms/offline/dt.py keeps the same shape).
Around it: the run directory and its logs (agents/rundir.py), the resume state and checkpoints
(agents/resume.py, agents/checkpoint.py), evaluation (agents/evaluation.py). On CPU a run killed and resumed ends
with bit-identical weights to an uninterrupted one.

Multi-process training (``torchrun``, agents/distributed.py): the model is wrapped in DistributedDataParallel,
each rank samples its own batches (sampler seeded with (seed, rank)), gradients are averaged, so the effective
batch is ``batch_size x world_size``. Rank 0 alone logs, evaluates and checkpoints; the other ranks wait for it at
each evaluation/checkpoint step. Checkpoints hold every rank's sampler and torch RNG state.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agents import tensorboard_views as tbv
from agents.checkpoint import Checkpoint, load_checkpoint
from agents.config import TrainConfig, config_from_dict
from agents.decision import DecisionModel, build_model, masked_mse
from agents.distributed import DistInfo, resolve_device
from agents.evaluation import Evaluation, evaluate_model, resolve_targets, score_of
from agents.graphs import UPDATE_BACKBONES, GraphedUpdate, graph_mode, use_graphs
from agents.policy import acting_policy
from agents.preempt import Preemption
from agents.resume import (
    Checkpointer,
    CheckpointWriter,
    TrainState,
    check_resume,
    config_changes,
    load_weights,
    next_time_eval,
    record_changes,
    start_state,
)
from agents.rundir import LossMeter, RunLog, claim_run_dir, dataset_files, results_dict
from agents.runlock import release_held

__all__ = [
    "MODEL_KEYS",
    "build_model",
    "compute_loss",
    "load_model",
    "lr_factor",
    "make_optimizer",
    "make_updater",
    "sample_batch",
    "train",
]

#: Config keys that fix the model's shape; a checkpoint can only be resumed or loaded with the same values.
MODEL_KEYS: tuple[str, ...] = ("backbone", "layout", "rtg_embed", "dim", "depth", "n_heads", "max_ep_len")


# --- model -----------------------------------------------------------------------------------------------------
def load_model(path: str | Path, which: str = "latest") -> tuple[DecisionModel, TrainConfig, dict[str, Any]]:
    """(model in eval mode, its config, the checkpoint's state.json) from a run directory or checkpoint folder."""
    ckpt = load_checkpoint(path, which)
    cfg = config_from_dict(ckpt.meta["config"])
    model = build_model(cfg, ckpt.meta["obs_dim"], ckpt.meta["act_dim"])
    load_weights(model, ckpt.model, ckpt.path)
    return model.eval(), cfg, dict(ckpt.meta, checkpoint_path=str(ckpt.path))


def check_same_model(cfg: TrainConfig, saved: dict[str, Any], where: str) -> None:
    """ValueError naming every model-shaping key whose value differs from the checkpoint's (a key the checkpoint
    predates counts as its default, which is what it was trained with)."""
    default = asdict(TrainConfig())
    diff = [
        f"{k}={getattr(cfg, k)!r} (checkpoint: {saved.get(k, default[k])!r})"
        for k in MODEL_KEYS
        if saved.get(k, default[k]) != getattr(cfg, k)
    ]
    if diff:
        raise ValueError(
            f"{where} was trained with a different model: {', '.join(diff)}; drop those overrides to resume it"
        )


# --- data ------------------------------------------------------------------------------------------------------
def window_steps(cfg: TrainConfig) -> int:
    """Steps per sampled training sequence, a burn-in prefix included."""
    if cfg.train_mode == "segments":
        return cfg.segment_len
    if cfg.train_mode == "burn_in":
        return cfg.burn_in + cfg.context_len
    return cfg.context_len  # mixed: the windows' (its segments add up to segment_batch x segment_len steps)


def sample_batch(
    store: Any, cfg: TrainConfig, rng: np.random.Generator, fixed_shape: bool = True
) -> dict[str, np.ndarray]:
    """One training batch for ``cfg.train_mode``; see TrainConfig.train_mode.

    Windows are (B, K); segments (B, segment_len), or with ``fixed_shape=False`` cut after the batch's longest
    episode (the causal backbones give the real steps the same outputs, so the loss is unchanged; a CUDA-graphed
    update needs the fixed shape). ``mixed`` returns the windows' keys plus the segments' as ``seg_<key>``.
    """
    B, K = cfg.batch_size, cfg.context_len
    if cfg.train_mode == "window":
        return store.sample_windows(B, K, rng, start="random")
    if cfg.train_mode == "episode_start":
        return store.sample_windows(B, K, rng, start="episode")
    if cfg.train_mode == "segments":
        return _segments(store, B, cfg.segment_len, rng, fixed_shape)
    if cfg.train_mode == "mixed":
        windows = store.sample_windows(B, K, rng, start="random")
        segments = _segments(store, cfg.segment_batch, cfg.segment_len, rng, fixed_shape)
        return windows | {f"seg_{k}": v for k, v in segments.items()}
    return store.sample_burn_in(B, K, cfg.burn_in, rng)


def _segments(store: Any, n: int, length: int, rng: np.random.Generator, fixed_shape: bool) -> dict[str, np.ndarray]:
    """``n`` episodes from t=0, right-padded to ``length`` steps, or to the longest of them unless ``fixed_shape``."""
    batch = store.sample_segments(n, length, rng, start="episode")
    if fixed_shape:
        return batch
    used = int(batch["mask"].any(axis=0).sum())  # right-padded: the real steps are a prefix of every row
    return {k: v[:, :used] for k, v in batch.items()}


def to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}


def compute_loss(model: torch.nn.Module, b: dict[str, Tensor], cfg: TrainConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(masked squared error reduced as ``cfg.loss_reduction``, predicted actions (B, K, act), mask (B, K)) for one
    batch. ``mixed``: the mean of the windows' loss and the segments' loss (each over its own real steps), so
    neither part outweighs the other whatever their lengths; the predictions and mask are the windows'."""
    keys = ("states", "actions", "rtg", "timesteps", "mask")
    if cfg.train_mode != "burn_in":
        pred, _ = model(*(b[k] for k in keys))
        loss = masked_mse(pred, b["actions"], b["mask"], cfg.loss_reduction)
        if cfg.train_mode == "mixed":
            seg_pred, _ = model(*(b[f"seg_{k}"] for k in keys))
            loss = 0.5 * (loss + masked_mse(seg_pred, b["seg_actions"], b["seg_mask"], cfg.loss_reduction))
        return loss, pred, b["mask"]
    n = cfg.burn_in
    pre = {k: b[k][:, :n] for k in keys}
    win = {k: b[k][:, n:] for k in keys}
    with torch.no_grad():  # R2D2-style burn-in: run the recurrence over the prefix without gradient
        _, state = model(*(pre[k] for k in keys))
    prev_action = pre["actions"][:, -1]  # a_{t-1} of the window's first step (zero if it is padding)
    pred, _ = model(*(win[k] for k in keys), state=state, prev_action=prev_action)
    return masked_mse(pred, win["actions"], win["mask"], cfg.loss_reduction), pred, win["mask"]


def make_updater(
    train_model: torch.nn.Module, cfg: TrainConfig, optimizer: torch.optim.Optimizer, scheduler: Any, graphs: bool
) -> GraphedUpdate:
    """The update every run takes: ``compute_loss`` (bf16 autocast when ``cfg.bf16``) -> backward -> clip to
    ``cfg.grad_clip`` -> AdamW -> scheduler, captured as a CUDA graph at its first ``step`` when ``graphs``, else run
    eagerly (agents/graphs.py). ``train_model`` is the model as trained (possibly DDP-wrapped or compiled); under
    DDP backward averages the gradients over the ranks. ``agents/bench.py`` times this same update."""

    def loss_fn(m: torch.nn.Module, b: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        with torch.autocast(b["states"].device.type, dtype=torch.bfloat16, enabled=cfg.bf16):  # recorded as any op
            return compute_loss(m, b, cfg)

    return GraphedUpdate(train_model, optimizer, scheduler, cfg.grad_clip, loss_fn, mode="on" if graphs else "off")


@torch.no_grad()
def fit_optimizer_to_graphs(optimizer: torch.optim.Optimizer, scheduler: Any, graphs: bool) -> None:
    """Make a (possibly just restored) AdamW fit the update that runs: with ``graphs``, ``capturable=True``, a
    device-tensor lr and step counts on the parameters' device (as ``make_optimizer(..., graphs=True)``); without,
    the float lr and CPU step counts. A checkpoint stores a float lr whatever the mode (agents/checkpoint.py), so a
    run can be resumed with ``cuda_graphs`` changed."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        lr = float(group["lr"])
        group["capturable"] = graphs
        if graphs:
            group["lr"] = group["lr"] if isinstance(group["lr"], Tensor) else torch.tensor(lr, device=device)
        else:
            group["lr"] = lr
        if "initial_lr" in group:
            group["initial_lr"] = float(group["initial_lr"])
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if isinstance(step, Tensor):
                optimizer.state[p]["step"] = step.to(device if graphs else "cpu", torch.float32)
    if scheduler is not None:
        scheduler.base_lrs = [float(b) for b in scheduler.base_lrs]


def lr_factor(cfg: TrainConfig, step: int, budget_used: float = 0.0) -> float:
    """Learning rate at update ``step`` (0-based) as a fraction of ``cfg.lr``: DT's linear warm-up
    min((step + 1) / warmup_steps, 1) (kzl/decision-transformer gym/experiment.py), then constant, or a cosine
    decay to ``min_lr_ratio`` (Loshchilov & Hutter 2017, without restarts) that ends at ``steps`` or, with a
    ``time_budget_min``, when ``budget_used`` (the fraction of the budget spent, 0..1) reaches 1, whichever
    is further along. A time-budgeted run thus ends on its smallest rate, whatever its speed.

    >>> cfg = TrainConfig(steps=110, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.0)
    >>> [round(lr_factor(cfg, s), 3) for s in (0, 9, 59, 109, 200)]
    [0.1, 1.0, 0.5, 0.0, 0.0]
    >>> round(lr_factor(cfg, 20, budget_used=0.5), 3), round(lr_factor(cfg, 20, budget_used=1.0), 3)
    (0.5, 0.0)

    ``wsd`` (warm-up, stable, decay; Hu et al. 2024, MiniCPM; Hägele et al. 2024) holds the peak rate and decays
    linearly to ``min_lr_ratio`` over the last ``decay_fraction`` of the run, so a short budget spends most of
    its updates at the full rate and still ends on the smallest one:

    >>> cfg = TrainConfig(steps=100, warmup_steps=10, lr_schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.0)
    >>> [round(lr_factor(cfg, s), 3) for s in (0, 9, 79, 89, 99)]
    [0.1, 1.0, 1.0, 0.5, 0.0]
    >>> round(lr_factor(cfg, 20, budget_used=0.9), 3)
    0.5
    """
    warmup = max(cfg.warmup_steps, 1)
    if step + 1 < warmup or cfg.lr_schedule == "constant":
        return min((step + 1) / warmup, 1.0)
    if cfg.lr_schedule == "wsd":
        progress = min(max((step + 1) / max(cfg.steps, 1), budget_used), 1.0)
        into_decay = (progress - (1.0 - cfg.decay_fraction)) / max(cfg.decay_fraction, 1e-12)
        return 1.0 - (1.0 - cfg.min_lr_ratio) * min(max(into_decay, 0.0), 1.0)
    progress = min(max((step + 1 - warmup) / max(cfg.steps - warmup, 1), budget_used), 1.0)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    params: Iterable[Tensor],
    cfg: TrainConfig,
    graphs: bool = False,
    budget_used: Callable[[], float] | None = None,
    saved: Checkpoint | None = None,
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW and its learning-rate schedule, ``lr_factor`` (DT's linear warm-up, then constant, cosine or
    wsd): the one place they are built, for the trainer, agents/bench.py and the ensemble alike. With ``graphs``
    (parameters on CUDA), the capturable form a CUDA-graphed update needs: the learning rate a device tensor that
    ``LambdaLR`` fills in place, the step counts on the device. ``budget_used`` returns the fraction of
    ``time_budget_min`` spent so far: a decaying schedule then ends with the budget (the training loop passes it;
    without it the schedule follows steps only). ``saved``: a checkpoint whose optimizer and scheduler state to
    restore, with ``cfg``'s lr and weight decay put in (``apply_optimizer_keys``) and fitted to ``graphs``."""
    params = list(params)

    def schedule(step: int) -> float:
        return lr_factor(cfg, step, budget_used() if budget_used else 0.0)

    lr: float | Tensor = torch.tensor(cfg.lr, device=params[0].device) if graphs else cfg.lr
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, foreach=True, capturable=graphs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if saved is not None:
        optimizer.load_state_dict(saved.optimizer)
        scheduler.load_state_dict(saved.meta["scheduler"])
        apply_optimizer_keys(optimizer, scheduler, cfg)
        fit_optimizer_to_graphs(optimizer, scheduler, graphs)  # the checkpoint may come from a run with the other mode
    return optimizer, scheduler


def apply_optimizer_keys(optimizer: torch.optim.Optimizer, scheduler: Any, cfg: TrainConfig) -> None:
    """Put ``cfg.lr`` and ``cfg.weight_decay`` into an optimizer and LambdaLR scheduler just restored from a
    checkpoint that had other values: the schedule's factor at this step is kept, the peak rate becomes ``lr``.
    Unchanged values are left as loaded (bit-identical resume)."""
    for i, group in enumerate(optimizer.param_groups):
        base = float(scheduler.base_lrs[i])
        if base != cfg.lr:
            group["lr"] = float(group["lr"]) / base * cfg.lr
            group["initial_lr"] = cfg.lr
            scheduler.base_lrs[i] = cfg.lr
        if group["weight_decay"] != cfg.weight_decay:
            group["weight_decay"] = cfg.weight_decay


def for_training(model: torch.nn.Module, cfg: TrainConfig, dist: DistInfo, device: torch.device) -> torch.nn.Module:
    """The module the loop calls: DDP-wrapped under torchrun (broadcasts rank 0's weights), compiled if asked."""
    if dist.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if cfg.compile else model


@dataclass(frozen=True)
class Setup:
    """Everything ``train`` builds before its first step."""

    cfg: TrainConfig
    store: Any  # TrajectoryStore
    device: torch.device
    run_dir: Path
    targets: tuple[float, ...]
    model: DecisionModel
    ckpt: Checkpoint | None  # the checkpoint being resumed
    graphs: bool  # cuda_graphs resolved for this device and backbone: capture the update as a CUDA graph
    state: TrainState  # progress: fresh, or the checkpoint's
    rng: np.random.Generator  # this rank's batch sampler


def set_up(cfg: TrainConfig, run_dir: Path, resume: bool, overwrite: bool, dist: DistInfo, store: Any) -> Setup:
    """Load the data, prepare the run directory and build (or reload) the model.

    Anything here can fail on user input; ``dist.agree`` stops every rank with the one message.
    """
    from envs import load_dataset
    from envs.provenance import warn_if_stale

    error = setup = None
    if cfg.video_every:  # MUJOCO_GL=egl on a headless machine; must happen before MuJoCo is first imported
        import envs.video  # noqa: F401
    try:
        if not cfg.dataset and store is None:
            raise ValueError("no dataset: pass --dataset minari:<id> or d4rl:<file.hdf5> (see `run_rl.py datasets`)")
        torch.set_num_threads(cfg.threads or dist.default_threads())
        device = resolve_device(cfg.device, dist)
        graphs = use_graphs(graph_mode(cfg, dist.is_distributed), device, cfg.backbone, UPDATE_BACKBONES)
        torch.manual_seed(cfg.seed)
        store = store if store is not None else load_dataset(cfg.dataset, env_id=cfg.env or None)
        if dist.is_main:  # the run directory's one writer until ``train`` returns (agents/runlock.py)
            run_dir = claim_run_dir(run_dir, resume, overwrite, keep=dataset_files(cfg.dataset)).hold().run_dir
            warn_if_stale(cfg.dataset)
        targets = resolve_targets(cfg.target_returns, store.env_id, store.info().return_max)
        model = build_model(cfg, store.obs_dim, store.act_dim, store.state_mean, store.state_std).to(device)
        ckpt = load_checkpoint(run_dir) if resume else None
        if ckpt is not None:
            check_resume(cfg, ckpt.meta, store, str(run_dir), MODEL_KEYS)
            load_weights(model, ckpt.model, ckpt.path)
        state, rng = start_state(ckpt, cfg.seed, dist, device)  # seeds or restores this rank's RNGs
        if ckpt is not None and dist.is_main:
            record_changes(run_dir, ckpt.meta["step"], config_changes(ckpt.meta["config"], cfg))
        setup = Setup(cfg, store, device, run_dir, targets, model, ckpt, graphs, state, rng)
    except Exception as err:
        error = err
    dist.agree(error)
    return setup


# --- the loop ------------------------------------------------------------------------------------------------
def _releasing_run_dir(train_fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``train`` that gives back its run directory's lock (taken in ``set_up``) however it ends."""

    @functools.wraps(train_fn)
    def wrapper(cfg: TrainConfig, run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
        try:
            return train_fn(cfg, run_dir, **kwargs)
        finally:
            release_held(run_dir)

    return wrapper


@_releasing_run_dir
def train(
    cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
    dist: DistInfo | None = None, store: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train a Decision agent as ``cfg`` says, evaluating and checkpointing into ``run_dir``; returns results.json.
    ``resume``: continue from its latest checkpoint; ``overwrite``: move an earlier run aside (agents/rundir.py).
    ``dist``: this rank in an initialised process group (ranks != 0 return {}). ``store``: a loaded TrajectoryStore."""
    dist = dist or DistInfo()
    s = set_up(cfg, Path(run_dir), resume, overwrite, dist, store)
    cfg, model, state, rng = s.cfg, s.model, s.state, s.rng
    tokens = window_steps(cfg) * model.tokens_per_step * cfg.batch_size * dist.world_size  # per update, all ranks
    bar = progress_bar(cfg, state.step, dist.is_main)
    optimizer, scheduler, updater = start_updates(s, dist)
    log, saver = open_run_log(s, state, resume, optimizer, scheduler) if dist.is_main else (None, None)
    meter, evaluation, out_of_time = LossMeter(), None, False
    next_eval_min = next_time_eval(state.clock_min(cfg.budget_clock), cfg.eval_every_min, cfg.eval_at_min)
    stop = Preemption(cfg.requeue_exit_code)  # SIGTERM/SIGUSR1 -> checkpoint at this step, exit (agents/preempt.py)
    checkpointer = Checkpointer(rng, s.device, model, dist, saver)  # every rank calls it (agents/resume.py)
    if state.step == 0:  # a checkpoint from the start: a run directory is always one --resume accepts
        checkpointer.save(state)
    model.train()
    with stop if threading.current_thread() is threading.main_thread() else contextlib.nullcontext(stop):
        while state.step < cfg.steps and not out_of_time:
            # sample -> loss -> step (one host sync, for the loss)
            t0, c0 = time.perf_counter(), time.process_time()
            batch = to_tensors(sample_batch(s.store, cfg, rng, fixed_shape=s.graphs), s.device)
            out = updater.step(batch)
            loss = out.loss.item()
            step = state.advance(time.perf_counter() - t0, time.process_time() - c0)
            check_loss(loss, step)
            meter.add(loss)
            bar.update(1)

            # stop? (every rank agrees, so none is left waiting in a collective)
            used_min = state.clock_min(cfg.budget_clock)
            preempted, out_of_time, time_eval = dist.any_rank(
                stop.requested,
                state.budget_used(cfg.budget_clock, cfg.time_budget_min) >= 1.0,
                used_min >= next_eval_min,
            )
            if preempted:
                checkpointer.save_and_exit(stop, state, log)
            final = step == cfg.steps or out_of_time  # the last update: final evaluation and checkpoint

            # log (the loss is averaged over the ranks: every rank takes part)
            if step % max(cfg.log_every, 1) == 0 or final:
                loss, n, seconds = meter.flush(dist)
                if log is not None:
                    lr = float(scheduler.get_last_lr()[0])  # a 0-dim tensor with cuda_graphs
                    log.train_scalars(step, loss, lr, float(out.grad_norm), n, tokens, seconds)
                    bar.set_postfix(loss=f"{loss:.4f}")
            if log is not None and cfg.histogram_every and step % cfg.histogram_every == 0:
                log.action_histograms(step, out.pred[out.mask], batch["actions"][:, -out.mask.shape[1] :][out.mask])

            eval_due = final or time_eval or (cfg.eval_every and step % cfg.eval_every == 0)
            if time_eval:
                next_eval_min = next_time_eval(used_min, cfg.eval_every_min, cfg.eval_at_min)
            save_due = final or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
            if not (eval_due or save_due):
                continue
            if final:  # saved before the final evaluation, which may be long, fail or be interrupted
                checkpointer.save(state)
            # evaluate (rank 0; the others wait in checkpointer.save below); the final one with final_eval_episodes
            improved = False
            if log is not None and eval_due:
                with meter.paused():
                    evaluation, improved = evaluate_and_log(s, log, state, step, final, stop, bar.write)

            # checkpoint (also whenever the evaluation score improved, so that "best" holds those weights)
            checkpointer.save(state, save=bool(save_due) and not final, best=improved)
        if dist.any_rank(stop.requested)[0]:  # a signal during the final evaluation or checkpoint
            checkpointer.save_and_exit(stop, state, log)
    bar.close()
    return finish(s, log, state, evaluation, out_of_time) if log is not None else {}


def start_updates(s: Setup, dist: DistInfo) -> tuple[torch.optim.Optimizer, Any, GraphedUpdate]:
    """(optimizer, scheduler, update) for the first step: fresh, or the optimizer restored from the checkpoint being
    resumed. The schedule reads the fraction of ``time_budget_min`` spent from the run's progress."""

    def budget_used() -> float:
        return s.state.budget_used(s.cfg.budget_clock, s.cfg.time_budget_min)

    train_model = for_training(s.model, s.cfg, dist, s.device)
    optimizer, scheduler = make_optimizer(s.model.parameters(), s.cfg, s.graphs, budget_used, saved=s.ckpt)
    updater = make_updater(train_model, s.cfg, optimizer, scheduler, s.graphs)
    return optimizer, scheduler, updater


def progress_bar(cfg: TrainConfig, start: int, main: bool) -> Any:
    """tqdm over ``cfg.steps`` updates from ``start``, shown on rank 0 when ``cfg.progress``."""
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, disable=not main or not cfg.progress, dynamic_ncols=True)


def open_run_log(
    s: Setup, state: TrainState, resume: bool, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[RunLog, CheckpointWriter]:
    """Rank 0's logs (config.yaml, dataset.json, TensorBoard) and checkpoint writer for the run being started."""
    store = s.store
    returns = store.episode_returns  # the data's score on the evaluations' scale (return without a reference)
    data_score = score_of({"normalized_mean": float(np.mean(store.normalize_score(returns))),
                           "return_mean": float(returns.mean())})  # fmt: skip
    log = RunLog(s.run_dir, s.cfg, store.summary(), state.history, state.step + 1 if resume else None, data_score)
    log.views(s.cfg, store.summary(), store.episode_returns)
    return log, CheckpointWriter(s.run_dir, s.cfg, store, s.targets, s.model, optimizer, scheduler)


def evaluate_and_log(
    s: Setup, log: RunLog, state: TrainState, step: int, final: bool, stop: Preemption, say: Callable[[str], Any]
) -> tuple[Evaluation | None, bool]:
    """Evaluate the model at ``step`` (the final evaluation with ``final_eval_episodes``), record and log it, film
    it when a video is due: (the evaluation, whether it is the best so far), or (None, False) when a pre-emption
    signal interrupted it (the loop's next stop check then saves and exits)."""
    cfg = s.cfg
    episodes = cfg.final_eval_episodes if final else cfg.eval_episodes
    try:
        evaluation = evaluate_model(s.model, cfg, s.store.info(), s.targets, episodes, record_actions=True)
    except Exception:
        if not stop.requested:  # a signal sent to the process group also kills async env workers
            raise
        return None, False
    improved = state.record(evaluation.score, evaluation.brief())
    log.evaluation(step, evaluation, state.best, state.history)
    if cfg.video_every and (step % cfg.video_every == 0 or final):
        log_video(log, s.model, cfg, s.store.env_id, s.targets[0], step)
    say(f"step {step} ({state.train_min:.1f} train min): {evaluation.brief_text()} "
        f"(best {state.best:.1f} at step {state.best_step})")  # fmt: skip
    return evaluation, improved


def finish(
    s: Setup, log: RunLog, state: TrainState, evaluation: Evaluation | None, out_of_time: bool
) -> dict[str, Any]:
    """results.json of the finished run (written with the run's last logs) from its final evaluation."""
    if evaluation is None:  # resumed a finished run: evaluate the final weights again
        evaluation = evaluate_model(s.model, s.cfg, s.store.info(), s.targets, s.cfg.final_eval_episodes)
    extra = state.summary(s.run_dir, evaluation.score)
    extra["last_per_target"] = {key: score_of(r) for key, r in evaluation.per_target.items()}
    extra["stop_reason"] = "time_budget" if out_of_time else "steps"
    extra["cuda_graphs"] = "on" if s.graphs else "off"  # cfg.cuda_graphs as resolved for this run
    results = results_dict(s.cfg, evaluation, state.step, state.train_time_s, extra)
    log.finish(s.cfg, results)
    return results


def log_video(log: RunLog, model: DecisionModel, cfg: TrainConfig, env_id: str, target: float, step: int) -> None:
    """eval/video: one evaluation episode (seed eval_seed, headline target), every 4th frame at 160x128 (~12 s)."""
    from envs.video import render_episode

    was_training = model.training
    policy = acting_policy(model.eval(), cfg, target)
    ep = render_episode(policy, env_id, seed=cfg.eval_seed, max_steps=cfg.eval_max_steps)
    model.train(was_training)
    tbv.log_video(log.writer, ep.frames, step, ep.fps)


def check_loss(loss: float, step: int) -> None:
    """FloatingPointError when the loss is NaN or infinite, with what to change."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"training loss is {loss} at step {step}: lower --lr, keep --grad-clip > 0, or check the data"
        )
