"""Run bookkeeping: the run directory, its TensorBoard log, and the results.json schema.

Run directory layout::

    RUN/config.yaml        the resolved TrainConfig (usable as --config)
    RUN/dataset.json       summary of the dataset trained on
    RUN/results.json       final evaluation (see ``results_dict``), best and last scores
    RUN/evals.jsonl        one line per evaluation
    RUN/tb/                TensorBoard events (train/..., perf/..., eval/..., run/..., data/..., hparams)
    RUN/checkpoints/       see agents/checkpoint.py

Only rank 0 of a multi-process run writes here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from agents.checkpoint import atomic_write_text
from agents.config import TrainConfig
from agents.evaluation import Evaluation

__all__ = ["LossMeter", "RunLog", "machine_info", "prepare_run_dir", "results_dict"]


def prepare_run_dir(run_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Create or reuse ``run_dir``; never replace an existing run without ``overwrite``."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: pick one")
    if run_dir.is_symlink():
        target = os.readlink(run_dir)
        if not run_dir.exists():
            raise FileNotFoundError(
                f"run directory {str(run_dir)!r} is a link to {target!r}, which does not exist; restore its target "
                "or remove the link, or choose another --out"
            )
        if overwrite:
            raise FileExistsError(
                f"run directory {str(run_dir)!r} is a link to {target!r}; --overwrite does not delete through a "
                "link: remove the link, or pass its target as --out"
            )
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


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Where a number was measured: CPU model and cores, torch version and threads, and the GPU if one was used."""
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
    cfg: TrainConfig, evaluation: Evaluation, steps: int, wall_time_s: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """The results.json schema shared by train and eval (README: "results.json")."""
    head = evaluation.summary
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
        "per_target": evaluation.per_target,
        **extra,
    }


class RunLog:
    """Rank 0's writer for one run directory: config.yaml, dataset.json, evals.jsonl, TensorBoard, results.json,
    and learning_curve.png (redrawn at every evaluation).

    Args:
        run_dir: the prepared run directory.
        cfg: the run's config (written as config.yaml).
        dataset_summary: ``TrajectoryStore.summary()`` (written as dataset.json).
        history: evaluations already made (a resumed run): evals.jsonl is rewritten to match them.
        purge_step: on resume, TensorBoard events after this step are dropped (they were lost with the process).
        data_score: the behaviour data's normalised score, the dashed line of the learning curve (None: no line).
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: TrainConfig,
        dataset_summary: dict[str, Any],
        history: list[dict[str, Any]],
        purge_step: int | None,
        data_score: float | None = None,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir, self.data_score = run_dir, data_score
        self.title = f"Decision-{cfg.backbone} ({cfg.layout} tokens) on {dataset_summary.get('name', cfg.dataset)}"
        if purge_step is not None:  # evaluations logged after the checkpoint were lost with the killed process
            atomic_write_text(run_dir / "evals.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_write_text(run_dir / "dataset.json", json.dumps(dataset_summary, indent=1))
        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def train_scalars(
        self, step: int, loss: float, lr: float, grad_norm: float, steps: int, tokens: int, s: float
    ) -> None:
        """train/ and perf/ scalars for ``steps`` updates of ``tokens`` tokens each that took ``s`` seconds."""
        w = self.writer
        w.add_scalar("train/loss", loss, step)
        w.add_scalar("train/lr", lr, step)
        w.add_scalar("train/grad_norm", grad_norm, step)
        w.add_scalar("perf/steps_per_s", steps / s, step)
        w.add_scalar("perf/tokens_per_s", steps * tokens / s, step)

    def action_histograms(self, step: int, pred: torch.Tensor, data: torch.Tensor) -> None:
        self.writer.add_histogram("train/action_pred", pred.detach().float().cpu(), step)
        self.writer.add_histogram("train/action_data", data.cpu(), step)

    def views(self, cfg: TrainConfig, dataset_summary: dict[str, Any], episode_returns: np.ndarray) -> None:
        """The run's non-scalar TensorBoard views: run/config, data/summary, data/episode_returns (E,)."""
        from agents import tensorboard_views as tbv

        tbv.log_config(self.writer, cfg.to_dict())
        tbv.log_dataset(self.writer, dataset_summary, episode_returns)

    def evaluation(self, step: int, evaluation: Evaluation, best: float, history: list[dict[str, Any]]) -> None:
        """eval/ scalars, the returns histogram and learning curve, and one evals.jsonl line (``history[-1]``).

        ``eval/score_vs_min`` is the score against training wall-clock: its TensorBoard step is whole seconds of
        update time (``train_min * 60``), so runs of different speeds compare at equal time (TensorBoard steps are
        integers, hence seconds rather than minutes). ``eval/score_vs_cpu_min`` is the same against the process's
        CPU seconds in update steps (``cpu_min * 60``), the clock of ``budget_clock: cpu``.
        """
        from agents import tensorboard_views as tbv

        w, head, row = self.writer, evaluation.summary, history[-1]
        w.add_scalar("eval/train_min", row["train_min"], step)
        w.add_scalar("eval/score_vs_min", row["score"], int(round(row["train_min"] * 60)))
        if "cpu_min" in row:
            w.add_scalar("eval/score_vs_cpu_min", row["score"], int(round(row["cpu_min"] * 60)))
        tbv.log_eval_returns(w, head["returns"], step)
        tbv.log_learning_curve(w, history, step, self.data_score, self.run_dir / "learning_curve.png", self.title)
        w.add_scalar("eval/return_mean", head["return_mean"], step)
        w.add_scalar("eval/return_std", head["return_std"], step)
        w.add_scalar("eval/normalized_score", head["normalized_mean"], step)
        w.add_scalar("eval/normalized_score_best", best, step)
        w.add_scalar("eval/episode_length", float(np.mean(head["lengths"])), step)
        w.add_scalar("perf/eval_time_s", sum(r["wall_time_s"] for r in evaluation.per_target.values()), step)
        for key, res in evaluation.per_target.items():
            w.add_scalar(f"eval/target_{key}/return_mean", res["return_mean"], step)
            w.add_scalar(f"eval/target_{key}/normalized_score", res["normalized_mean"], step)
            w.add_scalar(f"eval/target_{key}/episode_length", float(np.mean(res["lengths"])), step)
        if evaluation.actions is not None:
            w.add_histogram("eval/actions", evaluation.actions, step)
        with open(self.run_dir / "evals.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def finish(self, cfg: TrainConfig, results: dict[str, Any]) -> None:
        """Write results.json and the hparams summary; close TensorBoard."""
        atomic_write_text(self.run_dir / "results.json", json.dumps(results, indent=1))
        hparams = {k: v for k, v in cfg.to_dict().items() if not isinstance(v, list)}  # TensorBoard takes scalars
        metrics = {
            "hparam/score_last": results["last"]["score"],
            "hparam/score_best": results["best"]["score"],
            "hparam/score_mean_last3": results["mean_last3"],
            "hparam/return_last": results["return_mean"],
        }
        self.writer.add_hparams(hparams, metrics, run_name=".")
        self.writer.close()


class LossMeter:
    """Mean loss and wall time over the updates since the last log; time spent in ``paused()`` is left out."""

    def __init__(self) -> None:
        self.start, self.steps, self.loss_sum = time.perf_counter(), 0, 0.0

    def add(self, loss: float) -> None:
        self.steps, self.loss_sum = self.steps + 1, self.loss_sum + loss

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Keep what runs inside (evaluation) out of perf/steps_per_s."""
        t0 = time.perf_counter()
        yield
        self.start += time.perf_counter() - t0

    def flush(self, dist: Any) -> tuple[float, int, float]:
        """(mean loss over every rank, updates, seconds) since the last flush, then start again. Collective."""
        mean_loss = dist.all_mean(self.loss_sum / self.steps)
        out = (mean_loss, self.steps, time.perf_counter() - self.start)
        self.start, self.steps, self.loss_sum = time.perf_counter(), 0, 0.0
        return out
