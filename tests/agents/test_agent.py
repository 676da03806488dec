"""agents.load_agent: README's snippet runs as written and plays the episode `run_rl.py eval` reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import agents
import run_rl

ROOT = Path(__file__).resolve().parents[2]
TINY_FLAGS = [
    "--dim", "16", "--depth", "1", "--context-len", "4", "--batch-size", "8", "--eval-max-steps", "10",
    "--eval-envs", "1", "--final-eval-episodes", "1", "--target-returns", "100", "--threads", "1", "--no-progress",
]  # fmt: skip


def readme_snippet() -> str:
    """The README's Python block that calls agents.load_agent, exactly as written there."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (code,) = [b for b in blocks if "agents.load_agent(" in b]
    return code


def train_tiny(d4rl_file: Any, out: str, *flags: str) -> None:
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--env", "Hopper-v5", "--steps", "4", "--out", out,
            *TINY_FLAGS, *flags]  # fmt: skip
    assert run_rl.main(argv) == 0


def eval_returns(run: str, out: Path, *flags: str) -> list[float]:
    """Per-episode returns that `run_rl.py eval` reports at target 3600 (full-length episodes)."""
    argv = ["eval", "--checkpoint", run, "--targets", "3600", "--max-steps", "1000", "--out", str(out), *flags]
    assert run_rl.main(argv) == 0
    return json.loads((out / "results.json").read_text())["per_target"]["3600"]["returns"]


def test_readme_snippet_plays_the_episode_eval_reports(
    d4rl_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    train_tiny(d4rl_file, "runs/hopper-mingru")
    capsys.readouterr()
    scope: dict[str, Any] = {}
    exec(compile(readme_snippet(), "README.md", "exec"), scope)  # noqa: S102 - the documented snippet, as written
    assert capsys.readouterr().out.startswith("return ")
    (reported,) = eval_returns("runs/hopper-mingru", tmp_path / "ev", "--episodes", "1", "--envs", "1")
    assert scope["agent"].acting_mode == "recurrent"
    assert scope["episode_return"] == reported


def test_window_acting_and_the_batched_form_match_eval(d4rl_file: Any, tmp_path: Path) -> None:
    """The transformer acts with DT's window; act_batch over a vector env's slots plays eval's episodes."""
    run = str(tmp_path / "dt")
    train_tiny(d4rl_file, run, "--backbone", "transformer", "--layout", "interleaved")
    reported = eval_returns(run, tmp_path / "ev", "--episodes", "2", "--envs", "2", "--seed", "7")
    agent = agents.load_agent(run, which="best")
    assert agent.acting_mode == "window" and "transformer" in repr(agent)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("Hopper-v5")] * 2, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    obs, _ = envs.reset(seed=[7, 8])
    agent.reset(target_return=3600, n_envs=2)
    reward, first = np.zeros(2), np.ones(2, bool)
    returns, running = np.zeros(2), np.ones(2, bool)
    while running.any():
        action = agent.act_batch(obs, reward, first)
        obs, reward, terminated, truncated, _ = envs.step(action)
        returns += np.where(running, reward, 0.0)
        running &= ~(terminated | truncated)
        first[:] = False
    envs.close()
    assert returns.tolist() == reported


def test_errors_name_the_fix(d4rl_file: Any, tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    train_tiny(d4rl_file, run)
    with pytest.raises(ValueError, match=r"which='last' is not valid; use 'latest' or 'best'"):
        agents.load_agent(run, which="last")
    agent = agents.load_agent(run)
    with pytest.raises(RuntimeError, match=r"call reset\(target_return=...\) before acting"):
        agent.act(np.zeros(11))
    agent.reset(n_envs=2)
    assert agent.policy is not None and agent.policy.target_return == 100.0  # the run's headline target
    with pytest.raises(ValueError, match=r"act\(\) drives one env, but reset\(\) made 2 slots; use act_batch"):
        agent.act(np.zeros(11))
    agent.reset(target_return=3600)
    with pytest.raises(ValueError, match=r"obs has shape \(3,\), expected \(11,\)"):
        agent.act(np.zeros(3))
