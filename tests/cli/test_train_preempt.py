"""run_rl.py train under a scheduler's signals: SIGTERM/SIGUSR1 -> checkpoint at the current step, exit, --resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runs import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[2]
TINY = [*TINY_TRAIN, "--log-every", "1"]


def _latest_step(run: Path) -> int | None:
    pointer = run / "checkpoints" / "latest"
    return int(pointer.read_text().strip().removeprefix("step_")) if pointer.is_file() else None


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGUSR1, 3)])
def test_signal_checkpoints_current_step_then_resume_finishes(
    d4rl_file: Any, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run_rl.py"), "train", "--dataset", f"d4rl:{d4rl_file.path}", "--out", str(run),
           "--steps", "100000", "--checkpoint-every", "5", "--requeue-exit-code", str(code), *TINY]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 120
        while _latest_step(run) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # wait for the first checkpoint (step 5): training is under way
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        first = _latest_step(run)
        assert first is not None and first % 5 == 0
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)  # a hang fails here; no timing assertion (shared machines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr[-2000:]
    m = re.search(rf"pre-empted by {sig.name} at step (\d+); checkpoint saved; continue with: .*--resume", stdout)
    assert m, stdout + stderr[-2000:]
    step = int(m.group(1))
    assert step >= first and _latest_step(run) == step  # a checkpoint at the step it stopped at
    state = json.loads((run / "checkpoints" / f"step_{step:07d}" / "state.json").read_text())
    assert state["step"] == step
    assert not (run / "results.json").exists()  # unfinished: a sweep resumes it

    resume = [sys.executable, str(ROOT / "run_rl.py"), "train", "--out", str(run), "--resume", "--steps",
              str(step + 2)]  # fmt: skip
    done = subprocess.run(resume, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == step + 2 and results["stop_reason"] == "steps"
