"""What the CLI tests share: ``run_rl.main`` called in-process, with what it printed."""

from __future__ import annotations

import pytest

import run_rl

#: A tiny Hopper run: a 16-wide one-layer model, one 5-step evaluation episode, one thread.
TINY_TRAIN = [
    "--env", "Hopper-v5", "--dim", "16", "--depth", "1", "--context-len", "4", "--batch-size", "8",
    "--eval-max-steps", "5", "--eval-envs", "1", "--eval-episodes", "1", "--final-eval-episodes", "1",
    "--target-returns", "100", "--threads", "1", "--no-progress", "--eval-every", "0",
]  # fmt: skip


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``run_rl.main(argv)``."""
    code = run_rl.main(argv)
    out, err = capsys.readouterr()
    return code, out, err
