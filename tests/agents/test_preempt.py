"""agents.preempt: real SIGTERM / SIGUSR1 set the flag, handlers are restored, and a child exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agents.preempt import Preemption

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_own_signal_sets_flag_and_previous_handler_returns(sig: signal.Signals) -> None:
    seen: list[int] = []
    previous = signal.signal(sig, lambda s, f: seen.append(s))
    try:
        with Preemption(requeue_code=3) as stop:
            assert not stop.requested and stop.exit_code == 0
            os.kill(os.getpid(), sig)
            deadline = time.monotonic() + 5  # handlers run between bytecodes of the main thread
            while not stop.requested and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stop.requested and stop.signal_name == sig.name and stop.exit_code == 3
        assert seen == []  # ours ran, not the previous one
        os.kill(os.getpid(), sig)  # the previous handler is back
        time.sleep(0.05)
        assert seen == [sig]
    finally:
        signal.signal(sig, previous)


def test_first_signal_is_kept_and_bad_code_is_refused() -> None:
    with Preemption() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert stop.signal_name == "SIGUSR1" and stop.exit_code == 0
    with pytest.raises(ValueError, match="requeue_code must be an exit status in 0..255, got 300"):
        Preemption(requeue_code=300)


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agents.preempt import Preemption

    marker = Path(sys.argv[1])
    with Preemption() as stop:
        Path(sys.argv[2]).write_text("ready")
        step = 0
        while not stop.requested:   # the training loop: one step, then poll the flag
            time.sleep(0.01)
            step += 1
        marker.write_text(f"{stop.signal_name} at step {step}")  # where the trainer writes its checkpoint
    sys.exit(stop.exit_code)
    """
)


def test_child_exits_zero_after_sigterm_with_its_marker(tmp_path: Path) -> None:
    marker, ready = tmp_path / "checkpoint.txt", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), str(ready)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the child never entered its loop"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
        assert marker.read_text().startswith("SIGTERM at step ")
    finally:
        if proc.poll() is None:
            proc.kill()
