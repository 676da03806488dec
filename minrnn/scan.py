"""Linear recurrence ``h_t = a_t * h_{t-1} + b_t`` over time, behind interchangeable back-ends.

Every min-RNN reduces to this first-order recurrence once its gates are computed (Feng et al. 2024, §3):
minGRU has ``a = 1 - z`` and ``b = z * g(h~)``; minLSTM has ``a = f'`` and ``b = i' * g(h~)``.

Public form, in *linear* space (the fast paths are exact and stable there because ``0 <= a <= 1``)::

    h = scan(a, b, h0=None, backend="auto")     # a, b (B, T, D); h0 (B, D) or None (zeros); h (B, T, D)

Back-ends:

- ``"sequential"``: a plain loop over T in PyTorch autograd. The reference used by the tests.
- ``"logspace"``: the Heinsen (2023) parallel scan, ``log h = a* + logcumsumexp(log b - a*)`` with
  ``a* = cumsum(log a)`` (Feng et al. 2024 §3.1; Heinsen 2023, "Efficient Parallelization of a Ubiquitous
  Sequential Computation"). Needs ``b >= 0`` and ``h0 >= 0``. It runs in float64 by
  default because fp32 cancellation between ``a*`` and the logcumsumexp costs ~5e-4 at T=2048.
- ``"cpu"``: a numba kernel (:mod:`minrnn.scan_cpu`): one pass forward, one reversed pass backward.
- ``"triton"``: a Triton kernel (:mod:`minrnn.scan_triton`) for CUDA, or for CPU under ``TRITON_INTERPRET=1``.
- ``"triton_chunked"``: the same in tiles of 32 time steps, each scanned in registers.
- ``"fla"``, ``"fla_fused"``: flash-linear-attention's HGRN kernels (:mod:`minrnn.scan_fla`; optional extra ``fla``),
  chunked and fused-recurrent, with ``g = log a`` as HGRN's log gate.
- ``"auto"``: on CPU ``"cpu"``. On CUDA the back-end that ``docs/gpu/bench_scan_backends.json`` (written by
  ``scripts/bench_gpu.py`` on a GPU) records as ``"fastest"``, if that file exists in the source tree and the back-end
  is installed; otherwise ``"triton"``. ``"logspace"`` with a warning if the package is missing.

>>> import torch
>>> a, b = torch.full((1, 3, 1), 0.5), torch.ones(1, 3, 1)
>>> scan(a, b, backend="sequential").flatten().tolist()
[1.0, 1.5, 1.75]
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["BACKENDS", "cuda_auto_backend", "resolve_backend", "scan", "scan_logspace", "scan_sequential"]

BACKENDS = ("auto", "sequential", "logspace", "cpu", "triton", "triton_chunked", "fla", "fla_fused")
_TRITON_BACKENDS = ("triton", "triton_chunked", "fla", "fla_fused")
# Measured on a GPU by scripts/bench_gpu.py: {"fastest": <back-end>, ...}. Read by "auto" on CUDA.
MEASURED = Path(__file__).resolve().parent.parent / "docs" / "gpu" / "bench_scan_backends.json"

# log of 0 is -inf; we clamp to this finite floor so that logcumsumexp's backward never sees -inf - (-inf).
_LOG_ZERO = -1e30
# Clamp for log a: exp(-80) ~ 1.8e-35 is zero at fp32 resolution, and keeps cumsum(log a) finite.
_LOG_A_MIN = -80.0
_warned: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _has_numba() -> bool:
    return _importable("numba")


def _has_triton() -> bool:
    return _importable("triton")


def _has_fla() -> bool:
    from minrnn.scan_fla import has_fla

    return has_fla()


@cache
def cuda_auto_backend(measured: Path = MEASURED) -> str:
    """The back-end ``"auto"`` runs on CUDA: ``measured``'s ``"fastest"`` entry when the file exists, names a
    Triton-based back-end and that back-end is installed; ``"triton"`` otherwise (the default before measurement)."""
    try:
        fastest = json.loads(measured.read_text()).get("fastest")
    except (OSError, ValueError, AttributeError):
        return "triton"
    if fastest not in _TRITON_BACKENDS or (fastest.startswith("fla") and not _has_fla()):
        return "triton"
    return fastest


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``backend`` (one of :data:`BACKENDS`) to the concrete back-end that will run on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        if device.type == "cuda":
            if _has_triton():
                return cuda_auto_backend()
            _warn_once("triton", "triton is not installed; scan falls back to 'logspace' (pip install triton)")
            return "logspace"
        if device.type == "cpu":
            if _has_numba():
                return "cpu"
            _warn_once("numba", "numba is not installed; scan falls back to 'logspace' (pip install numba)")
        return "logspace"
    if backend == "cpu":
        if device.type != "cpu":
            raise ValueError(f"scan backend 'cpu' needs CPU tensors, got device {device}; use backend='auto'")
        if not _has_numba():
            _warn_once("numba", "numba is not installed; scan falls back to 'logspace' (pip install numba)")
            return "logspace"
    if backend in _TRITON_BACKENDS:
        if not _has_triton():
            raise ValueError(f"scan backend {backend!r} needs the triton package: pip install triton")
        if backend.startswith("fla") and not _has_fla():
            from minrnn.scan_fla import MISSING

            raise ValueError(MISSING.format(name=backend))
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"scan backend {backend!r} needs CUDA tensors, got device {device}; "
                "set TRITON_INTERPRET=1 before importing triton to run it on the CPU (slow, for tests)"
            )
    return backend


def _check(a: Tensor, b: Tensor, h0: Tensor | None) -> None:
    if a.dim() != 3 or a.shape != b.shape:
        raise ValueError(f"scan needs a and b of one shape (B, T, D); got a {tuple(a.shape)}, b {tuple(b.shape)}")
    if h0 is not None and h0.shape != (a.shape[0], a.shape[2]):
        raise ValueError(f"scan needs h0 of shape (B, D) = {(a.shape[0], a.shape[2])}; got {tuple(h0.shape)}")


def scan(a: Tensor, b: Tensor, h0: Tensor | None = None, backend: str = "auto") -> Tensor:
    """Return ``h`` (B, T, D) with ``h_t = a_t * h_{t-1} + b_t`` and ``h_{-1} = h0`` (zeros if None).

    Differentiable in ``a``, ``b`` and ``h0`` on every back-end. Half-precision inputs are accumulated in
    fp32; the result has the dtype of ``a``. A step with ``a = 1, b = 0`` leaves the state unchanged (padding).
    """
    _check(a, b, h0)
    name = resolve_backend(backend, a.device)
    if name == "sequential":
        return scan_sequential(a, b, h0)
    if name == "logspace":
        log_h0 = None if h0 is None else h0.log()  # a given state enters as log(h0), not log_g(h0)
        return scan_logspace(a.log(), b.log(), log_h0).to(a.dtype)
    if name == "cpu":
        from minrnn.scan_cpu import scan_cpu

        return scan_cpu(a, b, h0)
    if name in ("fla", "fla_fused"):
        from minrnn.scan_fla import scan_fla

        return scan_fla(a, b, h0, fused=name == "fla_fused")
    from minrnn.scan_triton import scan_triton

    return scan_triton(a, b, h0, chunked=name == "triton_chunked")


def scan_sequential(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Reference: a Python loop over T. ``a``, ``b`` (B, T, D); ``h0`` (B, D) or None -> ``h`` (B, T, D)."""
    _check(a, b, h0)
    h = torch.zeros_like(a[:, 0]) if h0 is None else h0.to(a.dtype)
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1) if out else a.new_zeros(a.shape)


def scan_logspace(
    log_a: Tensor, log_b: Tensor, log_h0: Tensor | None = None, compute_dtype: torch.dtype = torch.float64
) -> Tensor:
    """Heinsen parallel scan in log space (paper §3.1): returns ``h`` (B, T, D), in ``compute_dtype``.

    ``log_a``, ``log_b`` (B, T, D); ``log_h0`` (B, D) or None (a zero state). ``-inf`` entries mean zeros.
    ``compute_dtype=torch.float32`` reproduces the common eager implementation (e.g. lucidrains' minGRU),
    whose error grows with T because ``a*`` and the logcumsumexp cancel.
    """
    _check(log_a, log_b, log_h0)
    la = log_a.to(compute_dtype).clamp_min(_LOG_A_MIN)
    lb = log_b.to(compute_dtype).clamp_min(_LOG_ZERO)
    if log_h0 is not None:  # prepend h0 as step 0 with log a = 0 (Heinsen 2023)
        la = torch.cat([torch.zeros_like(la[:, :1]), la], dim=1)
        lb = torch.cat([log_h0.to(compute_dtype).clamp_min(_LOG_ZERO)[:, None], lb], dim=1)
    a_star = torch.cumsum(la, dim=1)  # (B, T[+1], D)
    log_h = a_star + torch.logcumsumexp(lb - a_star, dim=1)
    if log_h0 is not None:
        log_h = log_h[:, 1:]
    return torch.exp(log_h)
