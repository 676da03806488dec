"""One writer per run directory: an OS lock (``fcntl.flock``) on ``RUN/.lock``, held while a command writes there.

``train`` (new or ``--resume``) and ``eval`` take it before writing, so a second process pointed at the same folder
stops at once with the holder's PID instead of interleaving checkpoints, ``evals.jsonl`` rows and TensorBoard
events. The lock belongs to the open file: the kernel releases it when the process exits, however it exits
(``kill -9`` included), so a crashed run never leaves a stale lock behind. The file itself stays (empty): removing
it would let two processes lock two different files of the same name.

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> with RunLock(run):
...     RunLock(run).acquire()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agents.runlock.RunDirInUse: run directory ... is in use by another process (PID ...); wait for it ... or stop it...
>>> with RunLock(run) as lock:  # released on exit: free again
...     lock.held
True
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "RunDirInUse", "RunLock", "holder_pid", "release_held"]

#: The lock file in every run directory (and eval output folder); empty, never removed.
LOCK_NAME = ".lock"


#: The locks this process holds with ``RunLock.hold``, by absolute run directory: the process's own open lock files.
_HELD: dict[Path, RunLock] = {}


def release_held(run_dir: str | Path) -> None:
    """Release the lock this process holds on ``run_dir`` with ``RunLock.hold``, if any."""
    lock = _HELD.get(Path(run_dir).absolute())
    if lock is not None:
        lock.release()


class RunDirInUse(FileExistsError):
    """Another process holds the lock of the run directory this command would write into."""


def holder_pid(path: Path) -> int | None:
    """The PID holding a ``flock`` on the file ``path``, read from Linux's /proc/locks; None when unknown."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF"
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4]) if fields[4].isdigit() and fields[4] != "0" else None
    return None


class RunLock:
    """Exclusive, non-blocking lock on ``run_dir``; ``acquire`` raises RunDirInUse naming the holder's PID.

    A context manager: entering acquires (if not yet held), leaving releases. ``run_dir`` must exist.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock, creating the empty lock file if needed; RunDirInUse when another process holds it."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder_pid(self.path)
            who = "PID unknown" if pid is None else f"PID {pid}" + (", this process" if pid == os.getpid() else "")
            raise RunDirInUse(
                f"run directory {str(self.run_dir)!r} is in use by another process ({who}); wait for it to finish "
                "or stop it, or choose another --out"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if _HELD.get(self.run_dir.absolute()) is self:
            del _HELD[self.run_dir.absolute()]

    def hold(self) -> RunLock:
        """Acquire and keep the lock past the current function, until ``release_held(run_dir)`` (``train`` holds
        its run directory from ``set_up`` to its return this way)."""
        _HELD[self.run_dir.absolute()] = self.acquire()
        return self

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
