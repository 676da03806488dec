"""run_rl.py eval --video (MP4s of the evaluated episodes) and --save-dataset (rollouts as a Minari dataset)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runs import run_main

import run_rl

TINY_FLAGS = [
    "--dim", "16", "--depth", "1", "--context-len", "4", "--batch-size", "8", "--eval-max-steps", "10",
    "--eval-envs", "2", "--final-eval-episodes", "2", "--target-returns", "100", "--threads", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(d4rl_file: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step run on the tiny Hopper file (final_eval_episodes 2, eval_max_steps 10: see TINY_FLAGS)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--env", "Hopper-v5", "--steps", "4", "--out", str(out),
            "--eval-episodes", "1", *TINY_FLAGS]  # fmt: skip
    assert run_rl.main(argv) == 0
    return out


def test_eval_video_writes_mp4_of_the_evaluated_episode(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "ev"
    argv = ["eval", "--checkpoint", str(trained_run), "--episodes", "1", "--max-steps", "8", "--video",
            "--video-size", "160x128", "--out", str(out)]  # fmt: skip
    code, text, err = run_main(argv, capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    (video,) = res["videos"]
    assert Path(video) == out / "videos" / "episode_0.mp4" and Path(video).stat().st_size > 1000
    assert f"video: {video}" in text
    # same seed as the evaluation's first episode: the same return
    assert res["video_returns"][0] == pytest.approx(res["per_target"]["100"]["returns"][0], rel=1e-5)


def test_data_max_target_is_the_best_episode_return_of_the_data(
    d4rl_file: Any, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """target_returns=[data_max] in train, and --targets data_max in eval, mean the data's best episode return."""
    bounds = np.cumsum([0, *d4rl_file.lengths])
    rewards = d4rl_file.arrays["rewards"].astype(np.float64)
    best = max(rewards[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    code, _, err = run_main(["eval", "--checkpoint", str(trained_run), "--episodes", "1", "--max-steps", "4",
                             "--targets", "data_max", "100", "--out", str(tmp_path / "ev")], capsys)  # fmt: skip
    assert code == 0, err
    per_target = json.loads((tmp_path / "ev" / "results.json").read_text())["per_target"]
    (first, second) = per_target.values()
    assert first["target_return"] == pytest.approx(best, rel=1e-5) and second["target_return"] == 100.0
    code, _, err = run_main(["eval", "--checkpoint", str(trained_run), "--targets", "best"], capsys)
    assert code == 2 and "a target is a finite number or data_max, got 'best'" in err

    out = tmp_path / "train"
    flags = [f for f in TINY_FLAGS if f not in ("--target-returns", "100")]
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--env", "Hopper-v5", "--steps", "2", "--out", str(out),
            *flags, "--target-returns", "data_max"]  # fmt: skip
    assert run_rl.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["last_per_target"]) == [f"{best:g}"]
    assert "target_returns:\n- data_max" in (out / "config.yaml").read_text()  # kept as given: re-read on resume


def test_eval_video_bad_flags(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["eval", "--checkpoint", str(trained_run), "--video", "--out", str(tmp_path / "ev")]
    code, _, err = run_main([*base, "--video-episodes", "0"], capsys)
    assert code == 2 and "--video-episodes must be >= 1, got 0" in err
    code, _, err = run_main([*base, "--video-size", "320by240"], capsys)
    assert code == 2 and "--video-size must look like WIDTHxHEIGHT" in err
    assert not (tmp_path / "ev").exists()  # refused before any output


def test_eval_save_dataset_roundtrip_and_overwrite(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from envs import load_dataset

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    name = "minrnn/hopper/t-v0"
    base = ["eval", "--checkpoint", str(trained_run), "--save-dataset", name]
    code, text, err = run_main([*base, "--out", str(tmp_path / "ev1")], capsys)  # episodes: final_eval_episodes
    assert code == 0, err
    assert f"dataset: minari:{name} (2 episodes)" in text
    res = json.loads((tmp_path / "ev1" / "results.json").read_text())
    assert res["episodes"] == 2 and res["saved_dataset"]["spec"] == f"minari:{name}"

    store = load_dataset(f"minari:{name}")
    assert store.env_id == "Hopper-v5" and len(store.episode_returns) == 2
    np.testing.assert_allclose(store.episode_returns, res["per_target"]["100"]["returns"], rtol=1e-5)
    np.testing.assert_allclose(store.episode_returns, res["saved_dataset"]["returns"], rtol=1e-5)
    import minari

    meta = minari.load_dataset(name).storage.metadata
    assert meta["target_return"] == 100.0 and meta["checkpoint"] == res["checkpoint"]
    assert meta["policy"] == "mingru/interleaved/recurrent" and meta["train_step"] == 4

    code, _, err = run_main([*base, "--out", str(tmp_path / "ev2")], capsys)
    assert code == 2 and f"dataset {name} already exists" in err and "--overwrite" in err
    assert not (tmp_path / "ev2").exists()  # refused before the evaluation
    code, _, err = run_main([*base, "--out", str(tmp_path / "ev3"), "--episodes", "1", "--overwrite"], capsys)
    assert code == 0, err
    assert len(load_dataset(f"minari:{name}").episode_returns) == 1

    code, _, err = run_main([*base[:-1], "bad name", "--out", str(tmp_path / "ev4")], capsys)
    assert code == 2 and "Minari ids look like 'namespace/name-v0'" in err
