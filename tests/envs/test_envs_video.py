"""envs.video: real MuJoCo frames rendered offscreen, written as MP4 / TensorBoard GIF and read back. Tiny sizes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from envs import evaluate
from envs.video import add_video_summary, record_video, render_episode, video_tensor

W, H = 64, 48  # multiples of 16; a few frames each keep these tests at a few seconds


class Gentle:
    """Deterministic, weak actions: Hopper stays up for the few steps these tests run."""

    def reset(self, n_envs: int) -> None:
        self.t = np.zeros(n_envs, dtype=np.int64)

    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.t[done] = 0
        self.t += 1
        return 0.5 * np.sin(0.5 * self.t[:, None] + np.arange(3))  # (n_envs, 3)


def test_mp4s_hold_the_rendered_frames_of_evaluates_episodes(tmp_path: Path) -> None:
    import imageio.v2 as imageio

    res = record_video(Gentle(), "hopper", tmp_path / "video", n_episodes=2, seed=3, max_steps=12, max_frames=5,
                       frame_every=2, width=W, height=H)  # fmt: skip
    assert [p.name for p in res.paths] == ["episode_0.mp4", "episode_1.mp4"]
    assert res.frames.tolist() == [5, 5] and res.lengths.tolist() == [12, 12]  # frames at t = 0, 2, 4, 6, 8
    ev = evaluate(Gentle(), "hopper", n_episodes=2, n_envs=1, seed=3, vector="sync", max_steps=12)
    np.testing.assert_allclose(res.returns, ev.returns, rtol=1e-5)

    in_memory = render_episode(Gentle(), "hopper", seed=4, max_steps=12, max_frames=5, frame_every=2, width=W, height=H)
    decoded = np.stack(imageio.mimread(res.paths[1]))  # episode 1 used seed 3 + 1
    assert decoded.shape == (5, H, W, 3) == in_memory.frames.shape
    # H.264 is lossy (~3 grey levels here); a blank frame is ~95 off. Small motion is below this resolution.
    assert np.abs(decoded.astype(float) - in_memory.frames).mean() < 5.0
    assert in_memory.frames.std() > 10 and np.abs(np.diff(in_memory.frames.astype(float), axis=0)).mean() > 0.1
    assert in_memory.fps == pytest.approx(125 / 2)  # Hopper renders at 125 fps; every 2nd frame kept


def test_tensorboard_video_is_a_gif_tensorboard_reads_back(tmp_path: Path) -> None:
    import imageio.v3 as iio
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    ep = render_episode(Gentle(), "hopper", seed=0, max_steps=6, max_frames=4, frame_every=1, width=W, height=H)
    assert video_tensor(ep.frames).shape == (1, 4, 3, H, W)
    with SummaryWriter(tmp_path) as writer:
        add_video_summary(writer, "eval/video", ep.frames, step=7, fps=ep.fps)
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    (event,) = acc.Images("eval/video")
    assert (event.step, event.width, event.height) == (7, W, H)
    gif = iio.imread(io.BytesIO(event.encoded_image_string), extension=".gif", index=None)  # (T, H, W, C)
    assert gif.shape[:3] == (4, H, W)
    assert np.abs(gif[..., :3].astype(float) - ep.frames).mean() < 12.0  # GIF quantises to 256 colours


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 100}, r"width and height must be multiples of 16 \(H.264 macro blocks\), got 100x48"),
        ({"max_frames": 0}, r"n_episodes, max_frames and frame_every must be >= 1, got 1, 0, 1"),
    ],
)
def test_bad_video_budget_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"n_episodes": 1, "max_frames": 3, "frame_every": 1, "width": W, "height": H, **kwargs}
    with pytest.raises(ValueError, match=message):
        record_video(Gentle(), "hopper", tmp_path, **args)


def test_video_tensor_refuses_other_layouts() -> None:
    with pytest.raises(ValueError, match=r"frames must be \(T, H, W, C\) uint8 with C in 1/3/4, got \(3, 8, 8\) uint8"):
        video_tensor(np.zeros((3, 8, 8), np.uint8))
