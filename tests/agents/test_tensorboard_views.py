"""agents.tensorboard_views: every tag written to a real event file and read back with TensorBoard's reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.tensorboard_views import log_config, log_dataset, log_eval_returns, log_learning_curve, log_video


def _reader(logdir: Path):  # -> EventAccumulator
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def _text(acc, tag: str) -> str:
    (event,) = acc.Tensors(f"{tag}/text_summary")
    return event.tensor_proto.string_val[0].decode()


def test_every_view_is_readable(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 16, 32, 3), dtype=np.uint8)
    with SummaryWriter(tmp_path) as w:
        log_config(w, {"backbone": "mingru", "lr": 0.001, "target_returns": [3600, 1800]})
        log_dataset(w, {"name": "minari:x/y-v0", "episodes": 2, "return_mean": 12.5}, np.array([10.0, 15.0]))
        log_eval_returns(w, [100.0, 200.0, 300.0], step=50)
        log_learning_curve(w, [{"step": 25, "score": 1.0}, {"step": 50, "score": 3.0}], step=50)
        log_video(w, frames, step=50, fps=10)
    acc = _reader(tmp_path)
    assert _text(acc, "run/config") == "```\nbackbone: mingru\nlr: 0.001\ntarget_returns:\n- 3600\n- 1800\n```"
    assert "| episodes | 2 |" in _text(acc, "data/summary")
    (hist,) = acc.Histograms("eval/returns")
    assert hist.step == 50 and hist.histogram_value.num == 3 and hist.histogram_value.sum == 600.0
    assert (hist.histogram_value.min, hist.histogram_value.max) == (100.0, 300.0)
    assert acc.Histograms("data/episode_returns")[0].histogram_value.num == 2
    (curve,) = acc.Images("eval/learning_curve")
    assert curve.step == 50 and curve.encoded_image_string[:4] == b"\x89PNG" and curve.width > 100
    (video,) = acc.Images("eval/video")
    assert video.encoded_image_string[:6] == b"GIF89a" and (video.width, video.height) == (32, 16)


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match=r"returns must be a non-empty \(N,\) array, got shape \(0,\)"):
            log_eval_returns(w, [], step=1)
        with pytest.raises(ValueError, match="log_learning_curve needs at least one evaluation row"):
            log_learning_curve(w, [], step=1)


def test_learning_curve_figure_draws_steps_minutes_and_the_data_line() -> None:
    from agents.tensorboard_views import learning_curve_figure

    rows = [
        {"step": 10, "score": 5.0, "train_min": 0.5, "cpu_min": 0.4},
        {"step": 20, "score": 9.0, "train_min": 1.0, "cpu_min": 0.9},
    ]
    fig = learning_curve_figure(rows, data_score=7.5)
    by_steps, by_minutes = fig.axes
    assert list(by_steps.lines[0].get_xdata()) == [10, 20] and list(by_steps.lines[0].get_ydata()) == [5.0, 9.0]
    assert list(by_minutes.lines[0].get_xdata()) == [0.5, 1.0] and list(by_minutes.lines[1].get_xdata()) == [0.4, 0.9]
    assert all(list(ax.lines[-1].get_ydata()) == [7.5, 7.5] for ax in fig.axes)  # the data's score, dashed
    assert len(learning_curve_figure([{"step": 1, "score": 2.0}]).axes) == 1  # rows without times: steps only
