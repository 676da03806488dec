"""What a run shows in TensorBoard beyond its scalars: config, return distribution, learning curve, data, video.

Each ``log_*`` function takes a ``torch.utils.tensorboard.SummaryWriter`` and writes one fixed tag:

======================== ========== ===================================================================
tag                      tab        content
======================== ========== ===================================================================
``run/config``           Text       the resolved config as YAML (what ``config.yaml`` holds)
``data/summary``         Text       the dataset summary (``TrajectoryStore.summary()``) as a table
``data/episode_returns`` Histograms the dataset's per-episode returns (E,)
``eval/returns``         Histograms the per-episode returns (N,) of one evaluation, at its step
``eval/learning_curve``  Images     normalised score against step (evals.jsonl rows), redrawn each time
``eval/video``           Images     one evaluation episode as an animated GIF (``envs.video``)
======================== ========== ===================================================================

>>> config_markdown({"backbone": "mingru", "target_returns": [3600, 1800]}).splitlines()[1]
'backbone: mingru'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import yaml


def config_markdown(config: dict[str, Any]) -> str:
    """The config dict as a YAML code block (TensorBoard's text tab renders Markdown)."""
    return "```\n" + yaml.safe_dump(config, sort_keys=False).rstrip("\n") + "\n```"


def summary_markdown(summary: dict[str, Any]) -> str:
    """A flat dict as a two-column Markdown table; nested values are shown as YAML flow text.

    >>> summary_markdown({"episodes": 2, "env_id": "Hopper-v5"}).splitlines()[2]
    '| episodes | 2 |'
    """
    rows = [f"| {k} | {yaml.safe_dump(v, default_flow_style=True).strip() if isinstance(v, dict | list) else v} |"
            for k, v in summary.items()]  # fmt: skip
    return "\n".join(["| key | value |", "|---|---|", *rows])


def log_config(writer: Any, config: dict[str, Any], step: int = 0) -> None:
    """``run/config``: the resolved config (e.g. ``TrainConfig.to_dict()``)."""
    writer.add_text("run/config", config_markdown(config), step)


def log_dataset(writer: Any, summary: dict[str, Any], episode_returns: np.ndarray | None = None) -> None:
    """``data/summary`` (the summary dict) and, if given, ``data/episode_returns``: returns (E,) as a histogram."""
    writer.add_text("data/summary", summary_markdown(summary), 0)
    if episode_returns is not None:
        writer.add_histogram("data/episode_returns", np.asarray(episode_returns, dtype=np.float64), 0)


def log_eval_returns(writer: Any, returns: Sequence[float] | np.ndarray, step: int) -> None:
    """``eval/returns``: the N episode returns (N,) of one evaluation, so their spread shows, not only the mean."""
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 1 or len(returns) == 0:
        raise ValueError(f"returns must be a non-empty (N,) array, got shape {returns.shape}")
    writer.add_histogram("eval/returns", returns, step)


def learning_curve_figure(
    evals: Sequence[dict[str, Any]], data_score: float | None = None, title: str | None = None
) -> Any:
    """A matplotlib Figure of ``score`` for evals.jsonl rows ({"step": int, "score": float, "train_min": ...}):
    against gradient steps, and beside it against minutes of update time (``train_min``, or ``cpu_min`` too when
    the rows have it) when they carry times. ``data_score``, the behaviour data's own score, is drawn dashed: an
    agent above the line does better than the data it learned from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [e["score"] for e in evals]
    timed = all("train_min" in e for e in evals)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(9 if timed else 5, 3.5), squeeze=False)
    axes[0][0].plot([e["step"] for e in evals], scores, "o-")
    axes[0][0].set_xlabel("gradient step")
    if timed:
        axes[0][1].plot([e["train_min"] for e in evals], scores, "o-", label="wall clock")
        if all("cpu_min" in e for e in evals):
            axes[0][1].plot([e["cpu_min"] for e in evals], scores, "s--", alpha=0.7, label="CPU time")
            axes[0][1].legend(fontsize=8)
        axes[0][1].set_xlabel("minutes of update time")
    for ax in axes[0]:
        if data_score is not None:
            ax.axhline(data_score, color="grey", ls="--", lw=1)
            ax.annotate("data", (0, data_score), xycoords=("axes fraction", "data"), fontsize=8, color="grey",
                        xytext=(2, 2), textcoords="offset points")  # fmt: skip
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def log_learning_curve(
    writer: Any,
    evals: Sequence[dict[str, Any]],
    step: int,
    data_score: float | None = None,
    png: Any = None,
    title: str | None = None,
) -> None:
    """``eval/learning_curve``: the curve so far, as an image at ``step`` (add_figure closes the figure); with
    ``png`` (a path), the same figure is also saved there."""
    if not evals:
        raise ValueError("log_learning_curve needs at least one evaluation row ({'step': ..., 'score': ...})")
    fig = learning_curve_figure(evals, data_score, title)
    if png is not None:
        fig.savefig(png, dpi=100)
    writer.add_figure("eval/learning_curve", fig, step)


def log_video(writer: Any, frames: np.ndarray, step: int, fps: float) -> None:
    """``eval/video``: frames (T, H, W, 3) uint8 of one evaluation episode; see ``envs.video.add_video_summary``."""
    from envs.video import add_video_summary

    add_video_summary(writer, "eval/video", frames, step, fps)


__all__ = [
    "config_markdown",
    "learning_curve_figure",
    "log_config",
    "log_dataset",
    "log_eval_returns",
    "log_learning_curve",
    "log_video",
    "summary_markdown",
]
