"""Graceful pre-emption: turn SIGTERM / SIGUSR1 / SIGINT into a flag the training loop polls between steps.

Schedulers stop jobs with signals. Slurm sends SIGTERM at the end of the time limit or on pre-emption, and with
``#SBATCH --signal=USR1@120`` sends SIGUSR1 120 s before (sbatch(1), option ``--signal``); Kubernetes sends SIGTERM
and waits ``terminationGracePeriodSeconds`` (30 s by default) before SIGKILL. A handler that only sets a flag is the
pattern the Python docs recommend (``signal`` module, "Execution of Python signal handlers"): the loop finishes the
current step, writes a checkpoint at that step, and exits, so ``--resume`` continues from there. Ctrl-C (SIGINT)
does the same; a second Ctrl-C while that checkpoint is written stops at once (KeyboardInterrupt).

Exit-code convention (``exit_code``):
    0 by default: the run stopped cleanly and ``--resume`` continues it. A job script that wants the scheduler to
    requeue it passes its requeue code instead, e.g. ``Preemption(requeue_code=3)`` with Slurm's
    ``--requeue`` plus a wrapper ``[ $? -eq 3 ] && scontrol requeue $SLURM_JOB_ID``. After SIGINT it is 130
    (128 + 2), as for any program a user interrupted: a requeue wrapper must not restart what a person stopped.

>>> import os, signal
>>> with Preemption() as stop:
...     os.kill(os.getpid(), signal.SIGUSR1)
...     stop.requested, stop.signal_name, stop.exit_code
(True, 'SIGUSR1', 0)
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

#: Signals that ask for a checkpoint and exit: SIGTERM (Slurm, Kubernetes, `kill`), SIGUSR1 (Slurm's --signal),
#: SIGINT (Ctrl-C).
PREEMPT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
#: The exit status after SIGINT, the shell's convention for a program stopped by Ctrl-C.
INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT


class Preemption:
    """Context manager that records a pre-emption signal instead of dying from it.

    Inside the ``with`` block, SIGTERM, SIGUSR1 and SIGINT set ``requested`` (a second SIGINT raises
    KeyboardInterrupt: the user insists); the previous handlers come back on exit, so
    nested code and the interpreter's defaults are untouched afterwards. Signal handlers can only be installed from
    the main thread; elsewhere this raises a ValueError naming the fix.

    Args:
        requeue_code: the process exit code to use after a pre-emption (``exit_code``); 0 (default) means "stopped
            cleanly", a scheduler wrapper may ask for another (Slurm requeue scripts commonly test for one).
        signals: the signals to catch; default ``PREEMPT_SIGNALS``.
    """

    def __init__(self, requeue_code: int = 0, signals: tuple[signal.Signals, ...] = PREEMPT_SIGNALS) -> None:
        if not 0 <= requeue_code <= 255:
            raise ValueError(f"requeue_code must be an exit status in 0..255, got {requeue_code}")
        self.requeue_code = requeue_code
        self.signals = tuple(signals)
        self.requested = False  # True once one of `signals` arrived inside the block
        self.signal_name: str | None = None  # e.g. "SIGTERM", the first signal received
        self.received_at: float | None = None  # time.monotonic() of the first signal
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        if not self.requested:  # keep the first signal: SIGUSR1 then SIGTERM reports the warning that came first
            self.signal_name = signal.Signals(signum).name
            self.received_at = time.monotonic()
        self.requested = True

    @property
    def exit_code(self) -> int:
        """The exit status for the process: 130 after SIGINT, ``requeue_code`` after another signal, else 0."""
        if self.signal_name == "SIGINT":
            return INTERRUPTED_EXIT_CODE
        return self.requeue_code if self.requested else 0

    def __enter__(self) -> Preemption:
        if threading.current_thread() is not threading.main_thread():
            raise ValueError(
                "Preemption() must be entered in the main thread (Python installs signal handlers only there); "
                "run the training loop in the main thread, or poll a flag set by the main thread instead"
            )
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()


class Preempted(Exception):
    """Raised by the training loop after a pre-emption signal, once the checkpoint at ``step`` is written.

    ``run_rl.py train`` turns it into a message and the process exit status ``exit_code``; results.json is not
    written, so a sweep sees the run as unfinished and resumes it.
    """

    def __init__(self, signal_name: str | None, step: int, exit_code: int) -> None:
        what = "interrupted by SIGINT (Ctrl-C)" if signal_name == "SIGINT" else f"pre-empted by {signal_name}"
        super().__init__(f"{what} at step {step}; checkpoint saved")
        self.signal_name, self.step, self.exit_code = signal_name, step, exit_code


__all__ = ["INTERRUPTED_EXIT_CODE", "PREEMPT_SIGNALS", "Preempted", "Preemption"]
