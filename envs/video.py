"""Videos of a policy in a MuJoCo env: MP4 files for `eval`, and a GIF video summary for TensorBoard.

Frames come from Gymnasium's ``render_mode="rgb_array"`` (MuJoCo's offscreen renderer); headless machines need an
offscreen GL backend, chosen by ``MUJOCO_GL`` *before* MuJoCo is first imported: ``egl`` (GPU or Mesa EGL) or
``osmesa`` (software). Importing this module sets ``MUJOCO_GL=egl`` when it is unset and there is no display.

Episodes use ``evaluate``'s seeds (episode k resets with ``seed + k``) and ``envs.collect.play_episodes``, so a
deterministic policy shows exactly the episodes ``evaluate`` scored. Cost is bounded by the number of episodes
rendered and by ``max_frames`` per episode (frames past it are not rendered; the episode still runs to its end
for its return). Rendering is the cost: on the shared 2-core dev CPU with EGL on Mesa (no GPU), about 90 s per 1000
frames at 320x240 and 70 s at 160x128, plus ~1.4 s to open the env and GL context (numbers in ``record_video``).

TensorBoard: ``torch.utils.tensorboard.SummaryWriter.add_video`` needs moviepy and imports ``moviepy.editor``,
which moviepy 2.0 removed (torch/utils/tensorboard/summary.py, ``make_video``); without it, it prints a line and
logs nothing. ``add_video_summary`` writes the same summary add_video writes (an animated GIF in an image
summary, which TensorBoard's Images tab plays) with Pillow through imageio, so no moviepy is needed.
"""

from __future__ import annotations

import importlib.util
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"  # headless: offscreen EGL; read by `import mujoco`

from envs.collect import CollectedEpisode, play_episodes  # noqa: E402
from envs.make import DEFAULT_MAX_EPISODE_STEPS, make_env  # noqa: E402


@dataclass(frozen=True)
class VideoResult:
    """What ``record_video`` wrote: one MP4 per rendered episode, in episode order."""

    paths: list[Path]  # (K,) episode_<k>.mp4 files
    returns: np.ndarray  # (K,) float64 undiscounted return of each episode
    lengths: np.ndarray  # (K,) int64 steps of each episode
    frames: np.ndarray  # (K,) int64 frames written per episode (<= max_frames)
    wall_time_s: float  # rolling out, rendering and encoding

    @property
    def seconds_per_frame(self) -> float:
        return self.wall_time_s / max(1, int(self.frames.sum()))


@dataclass(frozen=True)
class RenderedEpisode:
    """One episode kept in memory: frames (T, H, W, 3) uint8 and its CollectedEpisode (return, length, ...)."""

    frames: np.ndarray
    episode: CollectedEpisode
    fps: float  # playback rate matching real time: the env's render_fps / frame_every


def _check_budget(n_episodes: int, max_frames: int, frame_every: int, width: int, height: int) -> None:
    if n_episodes < 1 or max_frames < 1 or frame_every < 1:
        raise ValueError(
            f"n_episodes, max_frames and frame_every must be >= 1, got {n_episodes}, {max_frames}, {frame_every}"
        )
    if width < 16 or height < 16 or width % 16 or height % 16:
        raise ValueError(
            f"width and height must be multiples of 16 (H.264 macro blocks), got {width}x{height}; e.g. 320x240 or "
            "160x128"
        )


def _render_env(env_id: str, max_steps: int, width: int, height: int) -> Any:
    try:
        env = make_env(env_id, max_episode_steps=max_steps, render_mode="rgb_array", width=width, height=height)
        env.reset(seed=0)
        env.render()  # fail here, with the fix, rather than after the first episode
    except Exception as err:
        raise RuntimeError(
            f"cannot render {env_id} offscreen ({type(err).__name__}: {err}). Set MUJOCO_GL=egl (or osmesa without "
            f"EGL) before Python starts, e.g. `MUJOCO_GL=egl python run_rl.py eval ...`; now "
            f"MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}."
        ) from err
    return env


def record_video(
    policy: Any,
    env_id: str,
    out_dir: str | Path,
    n_episodes: int = 1,
    seed: int = 0,
    max_steps: int = DEFAULT_MAX_EPISODE_STEPS,
    max_frames: int = DEFAULT_MAX_EPISODE_STEPS + 1,
    frame_every: int = 1,
    width: int = 320,
    height: int = 240,
) -> VideoResult:
    """Roll `n_episodes` episodes of `policy` (seeds ``seed + k``) and write ``out_dir/episode_<k>.mp4`` (H.264).

    Frames stream to the encoder (memory stays at one frame). The cost is about ``n_episodes * min(max_frames,
    T / frame_every)`` renders. Measured on the shared 2-core CPU dev machine, EGL on Mesa, HalfCheetah, 201 frames,
    encoding included: 320x240 18.2 s (90 s per 1000 frames; a full 1000-step episode ~1.5 min), 160x128 14.0 s
    (70 s per 1000 frames), of which ~1.4 s is opening the env and GL context.

    Args:
        policy: ``reset(n_envs)`` / ``act(obs, reward, done)`` object, as for ``evaluate``.
        max_frames: frames per episode at most (the first ones); the episode still runs to its end.
        frame_every: keep every n-th frame (playback stays real-time: fps = render_fps / frame_every).
        width, height: pixels, multiples of 16.
    """
    import imageio.v2 as imageio

    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ImportError('writing MP4s needs imageio\'s ffmpeg plugin: pip install -e ".[video]" (imageio[ffmpeg])')
    _check_budget(n_episodes, max_frames, frame_every, width, height)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env = _render_env(env_id, max_steps, width, height)
    fps = env.metadata.get("render_fps", 30) / frame_every
    paths = [out_dir / f"episode_{k}.mp4" for k in range(n_episodes)]
    counts = np.zeros(n_episodes, dtype=np.int64)
    writers: dict[int, Any] = {}

    def on_step(k: int, t: int) -> None:
        if t % frame_every or counts[k] >= max_frames:
            return
        if k not in writers:
            for w in writers.values():
                w.close()
            writers.clear()
            # macro_block_size=16: sizes are checked to be multiples, so imageio never rescales (imageio-ffmpeg docs)
            writers[k] = imageio.get_writer(paths[k], fps=fps, codec="libx264", quality=7, macro_block_size=16)
        writers[k].append_data(env.render())
        counts[k] += 1

    try:
        episodes = play_episodes(policy, env, n_episodes, seed, on_step=on_step)
    finally:
        for w in writers.values():
            w.close()
        env.close()
    return VideoResult(
        paths=paths,
        returns=np.array([ep.rewards.sum(dtype=np.float64) for ep in episodes]),
        lengths=np.array([len(ep) for ep in episodes], dtype=np.int64),
        frames=counts,
        wall_time_s=time.perf_counter() - t0,
    )


def render_episode(
    policy: Any,
    env_id: str,
    seed: int = 0,
    max_steps: int = DEFAULT_MAX_EPISODE_STEPS,
    max_frames: int = 150,
    frame_every: int = 4,
    width: int = 160,
    height: int = 128,
) -> RenderedEpisode:
    """One episode (reset seed `seed`) with its frames (T, H, W, 3) uint8 in memory, for TensorBoard.

    The defaults keep a training-time video cheap: every 4th frame of the first 600 steps at 160x128, at most
    150 renders (~12 s on the 2-core dev CPU, see ``record_video``) and 9 MB of frames.
    """
    _check_budget(1, max_frames, frame_every, width, height)
    env = _render_env(env_id, max_steps, width, height)
    frames: list[np.ndarray] = []

    def on_step(k: int, t: int) -> None:
        if t % frame_every == 0 and len(frames) < max_frames:
            frames.append(env.render())

    try:
        (episode,) = play_episodes(policy, env, 1, seed, on_step=on_step)
        fps = env.metadata.get("render_fps", 30) / frame_every
    finally:
        env.close()
    return RenderedEpisode(np.stack(frames), episode, fps)


def video_tensor(frames: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, C) uint8 -> (1, T, C, H, W) uint8, the layout ``SummaryWriter.add_video`` takes.

    >>> video_tensor(np.zeros((5, 16, 32, 3), np.uint8)).shape
    (1, 5, 3, 16, 32)
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, C) uint8 with C in 1/3/4, got {frames.shape} {frames.dtype}")
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)[None])


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """Frames (T, H, W, 3) uint8 as an animated GIF that loops (Pillow through imageio)."""
    import imageio.v3 as iio

    frames = np.asarray(frames)
    video_tensor(frames)  # shape/dtype check with its message
    buf = io.BytesIO()
    iio.imwrite(buf, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return buf.getvalue()


def add_video_summary(writer: Any, tag: str, frames: np.ndarray, step: int, fps: float = 30.0) -> None:
    """Log frames (T, H, W, 3) uint8 to a ``torch.utils.tensorboard.SummaryWriter`` as a video (animated GIF).

    Writes the summary ``add_video`` would (an image summary holding a GIF) without needing moviepy; see the module
    docstring. TensorBoard shows it under Images, with tag `tag`, e.g. "eval/video".
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = np.asarray(frames)
    video_tensor(frames)  # shape/dtype check with its message
    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=gif_bytes(frames, fps))
    # The call add_video itself ends with (torch/utils/tensorboard/writer.py, SummaryWriter.add_video).
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


__all__ = [
    "RenderedEpisode",
    "VideoResult",
    "add_video_summary",
    "gif_bytes",
    "record_video",
    "render_episode",
    "video_tensor",
]
