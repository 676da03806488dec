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
import subprocess
import sys
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
from agents.runlock import LOCK_NAME, RunLock

__all__ = [
    "LossMeter",
    "RUN_MARKERS",
    "RunLog",
    "claim_run_dir",
    "dataset_files",
    "machine_info",
    "prepare_run_dir",
    "results_dict",
    "unique_dir",
]


#: Files whose presence makes a folder one this toolkit wrote: a training run (config.yaml with its checkpoints,
#: dataset.json or tb/) or an evaluation's output (results.json); ``--overwrite`` replaces nothing else.
RUN_MARKERS: tuple[str, ...] = ("config.yaml", "results.json")


def prepare_run_dir(
    run_dir: str | Path, resume: bool, overwrite: bool, keep: tuple[Path, ...] = (), resumable: bool = True
) -> Path:
    """Create or reuse ``run_dir`` as ``claim_run_dir`` does, without keeping its lock; returns the path."""
    lock = claim_run_dir(run_dir, resume, overwrite, keep, resumable)
    lock.release()
    return lock.run_dir


def claim_run_dir(
    run_dir: str | Path, resume: bool, overwrite: bool, keep: tuple[Path, ...] = (), resumable: bool = True
) -> RunLock:
    """Create or reuse ``run_dir`` and take its lock (agents/runlock.py); never replace an existing run without
    ``overwrite``, and never delete anything.

    With ``overwrite`` an existing run directory (``RUN_MARKERS``) is moved aside to ``RUN.old-<time>``; any other
    non-empty folder, a link, or a folder holding one of ``keep`` (the dataset being read, the checkpoint being
    evaluated) is refused, naming what it found. The lock is taken before anything is moved, so a running
    process's folder is never touched. The caller releases the returned lock. ``resumable=False`` (eval's output
    folder) leaves ``--resume`` out of the hints.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: pick one")
    _check_link(run_dir, overwrite)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(
            f"--out {str(run_dir)!r} is a file, not a run directory; "
            + ("--overwrite replaces only run directories: " if overwrite else "")
            + "choose another --out"
        )
    contents = _contents(run_dir)
    lock = RunLock(run_dir)
    if run_dir.is_dir() and (not contents or _is_run_dir(run_dir)):
        lock.acquire()  # before reading or moving anything: another writer stops us here
    try:
        if resume:
            if not (run_dir / "checkpoints" / "latest").is_file():
                hint = (
                    "start a new run without --resume"
                    if not contents
                    else f"it holds {_listing(contents)} but no checkpoint; start it again with --overwrite (the "
                    "folder is moved aside, not deleted) or choose another --out"
                )
                raise FileNotFoundError(
                    f"--resume: no checkpoint in {str(run_dir)!r} (expected {run_dir}/checkpoints/latest); {hint}"
                )
            return lock
        if contents:
            if not overwrite and not resumable:
                raise FileExistsError(
                    f"output folder {str(run_dir)!r} already exists; pass --overwrite to replace it (the old one is "
                    "moved aside), or choose another --out"
                )
            if not overwrite:
                raise FileExistsError(
                    f"run directory {str(run_dir)!r} already exists; pass --resume to continue it, --overwrite to "
                    "replace it, or choose another --out"
                )
            _move_aside(run_dir, contents, keep, lock)
        _make_writable(run_dir)
        return lock.acquire()
    except BaseException:
        lock.release()
        raise


def _check_link(run_dir: Path, overwrite: bool) -> None:
    if not run_dir.is_symlink():
        return
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


def _contents(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` but its lock file (a folder holding only the lock is empty); [] when absent."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)


def _listing(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _is_run_dir(path: Path) -> bool:
    """A folder this toolkit wrote: a training run's config.yaml beside its checkpoints/, dataset.json or tb/, or
    an evaluation's results.json."""
    if (path / "config.yaml").is_file():
        return any((path / name).exists() for name in ("checkpoints", "dataset.json", "tb"))
    return (path / "results.json").is_file()


def _move_aside(run_dir: Path, contents: list[str], keep: tuple[Path, ...], lock: RunLock) -> None:
    """``--overwrite``: rename a run directory to ``RUN.old-<time>`` (its lock moves with it and is released)."""
    if not _is_run_dir(run_dir):
        raise FileExistsError(
            f"--overwrite: {str(run_dir)!r} is not a run directory of this toolkit (no {' or '.join(RUN_MARKERS)}); "
            f"it holds {_listing(contents)}. Nothing was changed: empty or remove it yourself, or choose another --out"
        )
    here = run_dir.resolve()
    for path in keep:
        kept = Path(path).resolve()
        if kept == here or here in kept.parents:
            raise FileExistsError(
                f"--overwrite: {str(run_dir)!r} holds {str(path)!r}, which this command reads; it is not replaced. "
                "Choose another --out"
            )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    run_dir.rename(aside)
    lock.release()
    print(f"--overwrite: moved the existing {run_dir} to {aside}", file=sys.stderr)


def _make_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write to run directory {str(run_dir)!r} ({err.strerror}); choose another --out"
        ) from None


def unique_dir(parent: Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name-2``, ``name-3``, ... when taken (``mkdir`` is atomic, so two
    processes choosing at the same moment never get the same folder)."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free folder name {name}-N under {parent}; clean it up")


def dataset_files(spec: str) -> tuple[Path, ...]:
    """The file or folder a dataset spec reads (``d4rl:FILE``, ``minari:ID``), for ``claim_run_dir``'s ``keep``."""
    kind, _, rest = spec.partition(":")
    if kind == "d4rl" and rest:
        return (Path(rest),)
    if kind == "minari" and rest:
        from envs.datasets import minari_root

        return (minari_root() / rest,)
    return ()


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


def git_commit(dirty: bool = False) -> str:
    """The HEAD commit of the checkout this package runs from ("unknown" outside a git checkout); with ``dirty``,
    "+dirty" appended when tracked files differ from it, so a number is never pinned to code it did not come from."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        return head + ("+dirty" if dirty and git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
        "commit": git_commit(dirty=True),
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
