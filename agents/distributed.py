"""Multi-process training with torch.distributed: process-group setup from torchrun's environment, and the few
collectives the trainer needs.

``torchrun --nproc_per_node=N run_rl.py train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR and MASTER_PORT in every worker; ``process_group`` reads them, joins the group (gloo on CPU, nccl on
GPU) and always leaves it again. Without those variables (or with WORLD_SIZE=1) nothing is initialised and
``DistInfo()`` describes a single process, so every helper here is a no-op.

>>> with process_group("cpu") as dist:  # no torchrun variables here: one process
...     dist.rank, dist.world_size, dist.is_main, dist.all_mean(2.5)
(0, 1, True, 2.5)
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

__all__ = ["DistInfo", "PeerError", "fingerprint", "init_from_env", "process_group", "resolve_device", "shutdown"]

#: How long a rank waits in a collective (e.g. at the barrier while rank 0 evaluates and saves) before giving up.
#: Evaluations of many long episodes can take a while, so this is far above torch's 10-minute NCCL default.
#: Override with the MINRNN_DIST_TIMEOUT_S environment variable.
DEFAULT_TIMEOUT_S = 3600


class PeerError(RuntimeError):
    """Raised on ranks != 0 when rank 0 failed in a step they waited for; rank 0 reports the error itself."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a multi-process run (default: rank 0 of 1, no process group)."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes in the run
    local_rank: int = 0  # rank on this node: picks the GPU (cuda:LOCAL_RANK)
    local_world_size: int = 1  # processes on this node: they share the CPU cores

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group is in use (world_size > 1)."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op in a single process)."""
        if self.is_distributed:
            tdist.barrier()

    def all_mean(self, value: float) -> float:
        """The mean of ``value`` over all ranks (every rank must call this at the same point)."""
        if not self.is_distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_comm_device(self))
        tdist.all_reduce(t)
        return t.item() / self.world_size

    def any_rank(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true when it is true on any rank: one all-reduce (MAX) for all of them, so every rank takes
        the same branch after it (e.g. "stop now").

        >>> DistInfo().any_rank(True, False)
        (True, False)
        """
        if not self.is_distributed:
            return tuple(bool(f) for f in flags)
        t = torch.tensor([float(f) for f in flags], dtype=torch.float64, device=_comm_device(self))
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return tuple(bool(v > 0) for v in t.tolist())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable, exchanged between our own processes only), on every rank."""
        if not self.is_distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def agree(self, error: BaseException | None) -> None:
        """Collective: raise on every rank if any rank's ``error`` is set; no-op when none is.

        The lowest failing rank re-raises its own error (and so reports it); every other rank raises PeerError,
        which the CLI does not print. A setup step that fails on user input (a missing dataset, an existing run
        directory on rank 0) thus gives one message and stops every rank at once, instead of leaving the others
        waiting for rank 0 in a later collective.
        """
        if self.is_distributed:
            messages = self.gather(None if error is None else f"{type(error).__name__}: {error}")
            failed = [(r, m) for r, m in enumerate(messages) if m is not None]
            if failed and failed[0][0] != self.rank:
                raise PeerError(f"rank {failed[0][0]} failed: {failed[0][1]}")
        if error is not None:
            raise error

    def default_threads(self) -> int:
        """torch threads per process when the config says 0: the node's cores shared among its ranks."""
        return max((os.cpu_count() or 1) // self.local_world_size, 1)


def _comm_device(dist: DistInfo) -> torch.device:
    if tdist.is_initialized() and tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    """The torch device for config value ``name``; under multi-process training "cuda" means cuda:LOCAL_RANK."""
    dist = dist or DistInfo()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use --set device=cpu")
    if name == "cuda" and dist.is_distributed:
        return torch.device("cuda", dist.local_rank)
    if name.startswith("cuda:") and dist.local_world_size > 1:
        raise ValueError(
            f"device={name!r} pins every rank on this node to one GPU; use device=cuda (each rank takes "
            "cuda:LOCAL_RANK)"
        )
    return torch.device(name)


def _env_int(key: str, default: int) -> int:
    value = os.environ.get(key, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {key}={value!r} must be an integer (set by torchrun)") from None


def init_from_env(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU), or return a single-process DistInfo.

    Args:
        device: the config's device ("cpu", "cuda", "auto", ...): it picks the backend.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo()
    rank = _env_int("RANK", -1)
    if not 0 <= rank < world_size:
        raise ValueError(f"WORLD_SIZE={world_size} but RANK={os.environ.get('RANK')!r}; launch with torchrun")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ValueError(f"WORLD_SIZE={world_size} but {' and '.join(missing)} unset; launch with torchrun")
    local_rank = _env_int("LOCAL_RANK", 0)
    info = DistInfo(rank, world_size, local_rank, _env_int("LOCAL_WORLD_SIZE", 1))
    dev = resolve_device(device, info)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not tdist.is_initialized():
        timeout = datetime.timedelta(seconds=_env_int("MINRNN_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://", timeout=timeout)
    return info


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


@contextmanager
def process_group(device: str = "cpu") -> Iterator[DistInfo]:
    """``init_from_env(device)`` for the ``with`` block; the group is destroyed at its end, error or not."""
    info = init_from_env(device)
    try:
        yield info
    finally:
        shutdown()


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (names, dtypes, shapes, bytes): equal iff the states are identical."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
