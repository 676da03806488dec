"""agents.trainer: the time budget, the final evaluation's episodes, results.json's last/best/mean_last3, and the
TensorBoard views (config, data, returns histogram, learning curve, score against wall-clock, video)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agents.config import TrainConfig
from agents.trainer import lr_factor, train


def _events(run: Path):  # -> EventAccumulator
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_time_budget_stops_early_then_evaluates_with_final_episodes(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    # 0.0002 min = 12 ms of update time: a few tiny updates, far fewer than `steps`
    cfg = tiny_config(steps=5000, time_budget_min=0.0002, eval_episodes=1, final_eval_episodes=3)
    res = train(cfg, tmp_path / "run")
    assert res["stop_reason"] == "time_budget" and 1 <= res["steps"] < 5000
    assert res["train_min"] >= 0.0002 and res["train_time_s"] == pytest.approx(res["train_min"] * 60)
    assert res["episodes"] == 3  # final_eval_episodes, not eval_episodes
    rows = [json.loads(line) for line in (tmp_path / "run" / "evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [res["steps"]] and rows[0]["train_min"] >= 0.0002
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step_{res['steps']:07d}"


def test_results_report_last_best_mean_last3_per_target_and_tensorboard_views(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    cfg = tiny_config(steps=8, eval_every=2, eval_episodes=1, final_eval_episodes=3, target_returns=[100.0, 50.0])
    run = tmp_path / "run"
    res = train(cfg, run)
    rows = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8] and res["stop_reason"] == "steps"
    minutes = [r["train_min"] for r in rows]
    assert minutes == sorted(minutes) and minutes[0] > 0
    scores = [r["score"] for r in rows]
    assert res["last"]["step"] == 8 and res["last"]["score"] == scores[-1]
    assert scores[-1] == pytest.approx(res["normalized_score_mean"])
    assert res["best"]["score"] == max(scores) and res["mean_last3"] == pytest.approx(np.mean(scores[-3:]))
    assert res["episodes"] == 3 and set(res["last_per_target"]) == {"100", "50"}
    for key, score in res["last_per_target"].items():
        assert score == pytest.approx(res["per_target"][key]["normalized_mean"])
        assert len(res["per_target"][key]["returns"]) == 3

    acc = _events(run)
    tags = acc.Tags()
    assert {"eval/returns", "data/episode_returns"} <= set(tags["histograms"])
    assert "eval/learning_curve" in tags["images"] and "eval/video" not in tags["images"]
    assert {"run/config/text_summary", "data/summary/text_summary"} <= set(tags["tensors"])
    assert [e.step for e in acc.Histograms("eval/returns")] == [2, 4, 6, 8]
    assert [e.value for e in acc.Scalars("eval/train_min")] == pytest.approx(minutes)
    vs_min = acc.Scalars("eval/score_vs_min")
    assert [e.step for e in vs_min] == [round(m * 60) for m in minutes]
    assert [e.value for e in vs_min] == pytest.approx(scores)
    vs_cpu = acc.Scalars("eval/score_vs_cpu_min")
    assert [e.step for e in vs_cpu] == [round(r["cpu_min"] * 60) for r in rows]
    png = (run / "learning_curve.png").read_bytes()  # redrawn at each evaluation: the last one holds all four
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_video_every_logs_an_evaluation_episode(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    pytest.importorskip("imageio")
    cfg = tiny_config(steps=4, eval_every=2, video_every=4, eval_episodes=1, final_eval_episodes=1, eval_max_steps=8)
    train(cfg, tmp_path / "run")
    images = _events(tmp_path / "run").Images("eval/video")
    assert [e.step for e in images] == [4]
    assert images[0].encoded_image_string[:6] == b"GIF89a" and (images[0].width, images[0].height) == (160, 128)


def test_video_every_must_be_a_multiple_of_eval_every(tiny_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(ValueError, match=r"video_every \(3\) must be a multiple of eval_every \(2\)"):
        tiny_config(eval_every=2, video_every=3)
    with pytest.raises(ValueError, match="requeue_exit_code must be an exit status in 0..255, got 256"):
        tiny_config(requeue_exit_code=256)
    with pytest.raises(ValueError, match="time_budget_min must be >= 0"):
        tiny_config(time_budget_min=-1)


def test_cpu_clock_budget_evaluates_every_few_minutes_and_cosine_ends_with_the_budget(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    # budget 0.003 CPU min (0.18 s), evaluations every 0.001 min: about three, at increasing CPU times
    cfg = tiny_config(
        steps=100_000, time_budget_min=0.003, budget_clock="cpu", eval_every=0, eval_every_min=0.001,
        eval_episodes=1, final_eval_episodes=1, warmup_steps=1, lr_schedule="cosine", min_lr_ratio=0.1,
    )  # fmt: skip
    run = tmp_path / "run"
    res = train(cfg, run)
    assert res["stop_reason"] == "time_budget" and res["cpu_min"] >= 0.003
    rows = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    cpu = [r["cpu_min"] for r in rows]
    assert len(rows) >= 3 and cpu == sorted(cpu)
    for k, minutes in enumerate(cpu[:-1]):  # each time-triggered evaluation is the first update past k+1 intervals
        assert minutes >= 0.001 * (k + 1) - 1e-4
    assert rows[-1]["step"] == res["steps"]
    # the schedule reached the end of its cosine with the budget, not with `steps` (which it is far from)
    lr = _events(run).Scalars("train/lr")[-1].value
    assert lr == pytest.approx(cfg.lr * 0.1, rel=0.05)


def test_eval_at_min_adds_early_evaluations_before_the_grid(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    # grid every 0.02 CPU min, extra points at 0.008 and 0.012 (the first update alone may take ~0.003): the first
    # two evaluations come from the list
    cfg = tiny_config(
        steps=100_000, time_budget_min=0.03, budget_clock="cpu", eval_every=0, eval_every_min=0.02,
        eval_at_min=(0.008, 0.012), eval_episodes=1, final_eval_episodes=1,
    )  # fmt: skip
    run = tmp_path / "run"
    res = train(cfg, run)
    cpu = [json.loads(line)["cpu_min"] for line in (run / "evals.jsonl").read_text().splitlines()]
    assert len(cpu) == 4 and cpu == sorted(cpu)  # 0.008, 0.012, 0.02, the final one
    assert 0.008 <= cpu[0] < 0.012 <= cpu[1] < 0.02 <= cpu[2]
    assert cpu[-1] == pytest.approx(res["cpu_min"], abs=1e-3)
    with pytest.raises(ValueError, match=r"eval_at_min must hold minutes > 0, got \[0.5, 0.0\]"):
        tiny_config(eval_at_min=(0.5, 0.0))


def test_lr_factor_follows_whichever_of_steps_and_budget_is_further() -> None:
    cfg = TrainConfig(steps=1000, warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.0)
    # written out: f(p) = 0.5 (1 + cos(pi p)), p = max((step + 1 - warmup) / (steps - warmup), budget)
    for step, used in [(99, 0.0), (549, 0.0), (199, 0.5), (899, 0.5), (110, 0.25), (110, 2.0)]:
        p = min(max((step + 1 - 100) / 900, used), 1.0)
        assert lr_factor(cfg, step, used) == pytest.approx(0.5 * (1 + np.cos(np.pi * p)))
    assert lr_factor(TrainConfig(steps=1000, warmup_steps=0), 10, 0.9) == 1.0  # constant ignores the budget


def test_budget_clock_must_be_wall_or_cpu(tiny_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(ValueError, match=r"budget_clock='cpus' is not valid \(did you mean 'cpu'\?\)"):
        tiny_config(budget_clock="cpus")
    with pytest.raises(ValueError, match="eval_every_min must be >= 0"):
        tiny_config(eval_every_min=-1.0)
