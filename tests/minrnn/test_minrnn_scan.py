"""Scan back-ends against an independent float64 Python-loop reference."""

from __future__ import annotations

import importlib

import pytest
import torch
from minrnn_reference import ref_scan

from minrnn.scan import resolve_backend, scan, scan_logspace
from minrnn.scan_cpu import gated_scan_cpu

scan_mod = importlib.import_module("minrnn.scan")  # the package re-exports a function named scan
CPU_BACKENDS = ["sequential", "logspace", "cpu"]


def _inputs(bsz: int, steps: int, dim: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(bsz, steps, dim, generator=gen, dtype=torch.float64).clamp(0.01, 0.999).to(dtype)
    b = torch.rand(bsz, steps, dim, generator=gen, dtype=torch.float64).to(dtype)  # >= 0 for logspace
    h0 = torch.rand(bsz, dim, generator=gen, dtype=torch.float64).to(dtype)
    return a, b, h0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("steps", [1, 17, 4096])
def test_forward_matches_reference_fp32(backend: str, steps: int) -> None:
    a, b, h0 = _inputs(2, steps, 8, torch.float32)
    ref = ref_scan(a, b, h0)
    assert (scan(a, b, h0, backend=backend).double() - ref).abs().max() <= 1e-5
    assert (scan(a, b, None, backend=backend).double() - ref_scan(a, b)).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_forward_matches_reference_fp64(backend: str) -> None:
    a, b, h0 = _inputs(3, 1000, 5, torch.float64)
    assert (scan(a, b, h0, backend=backend) - ref_scan(a, b, h0)).abs().max() <= 1e-10


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_match_reference(backend: str) -> None:
    a, b, h0 = (t.requires_grad_() for t in _inputs(2, 300, 6, torch.float64))
    dy = torch.randn(2, 300, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad(scan(a, b, h0, backend=backend), (a, b, h0), dy)
    want = torch.autograd.grad(ref_scan(a, b, h0), (a, b, h0), dy)
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() <= 1e-10


def test_gradcheck_cpu_function() -> None:
    a, b, h0 = (t.requires_grad_() for t in _inputs(2, 9, 5, torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, h0: scan(a, b, h0, backend="cpu"), (a, b, h0))


def test_gradcheck_gated_cpu_function() -> None:
    gen = torch.Generator().manual_seed(3)
    k_z, k_h = (torch.randn(2, 9, 5, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(2))
    h0 = torch.rand(2, 5, dtype=torch.float64, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(gated_scan_cpu, (k_z, k_h, h0))


def test_gated_cpu_matches_reference() -> None:
    gen = torch.Generator().manual_seed(4)
    k_z, k_h = (4 * torch.randn(3, 200, 7, dtype=torch.float64, generator=gen) for _ in range(2))
    z = torch.sigmoid(k_z)
    g = torch.where(k_h >= 0, k_h + 0.5, torch.sigmoid(k_h))
    assert (gated_scan_cpu(k_z, k_h) - ref_scan(1 - z, z * g)).abs().max() <= 1e-10


def test_chunked_channels_small_batch() -> None:
    """B=1 splits D into chunks across threads; D not a multiple of the chunk."""
    a, b, h0 = _inputs(1, 50, 77, torch.float32)
    assert (scan(a, b, h0, backend="cpu").double() - ref_scan(a, b, h0)).abs().max() <= 1e-5


def test_given_state_enters_as_log_h0() -> None:
    """github.com/lucidrains/minGRU-pytorch/issues/9: h0 must enter the log-space scan as log(h0), not log_g(h0)."""
    a = torch.full((1, 3, 1), 0.5, dtype=torch.float64)
    b = torch.zeros(1, 3, 1, dtype=torch.float64)
    h0 = torch.tensor([[2.0]], dtype=torch.float64)
    h = scan(a, b, h0, backend="logspace")
    assert torch.allclose(h.flatten(), torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("backend", ["logspace", "cpu"])
def test_long_sequence_stays_finite(backend: str) -> None:
    a, b, h0 = _inputs(1, 65536, 4, torch.float32)
    a.requires_grad_()
    h = scan(a, b, h0, backend=backend)
    (grad,) = torch.autograd.grad(h.sum(), a)
    assert torch.isfinite(h).all() and torch.isfinite(grad).all()
    assert (h[:, -100:].double() - ref_scan(a[:, -100:].detach(), b[:, -100:], h[:, -101].detach())).abs().max() < 1e-4


def test_padding_steps_keep_state_in_logspace() -> None:
    """a=1, b=0 (log b = -inf) keeps the state, with finite gradients, also from a zero state."""
    log_a = torch.zeros(2, 5, 3, dtype=torch.float64, requires_grad=True)
    log_b = torch.full((2, 5, 3), float("-inf"), dtype=torch.float64, requires_grad=True)
    h = scan_logspace(log_a, log_b, None)
    grads = torch.autograd.grad(h.sum(), (log_a, log_b))
    assert (h == 0).all() and all(torch.isfinite(g).all() for g in grads)


def test_unknown_backend_message() -> None:
    with pytest.raises(ValueError, match="unknown scan backend 'fast'"):
        scan(torch.ones(1, 2, 3), torch.ones(1, 2, 3), backend="fast")


def test_shape_message() -> None:
    with pytest.raises(ValueError, match=r"got a \(1, 2, 3\), b \(1, 2, 4\)"):
        scan(torch.ones(1, 2, 3), torch.ones(1, 2, 4))


def test_triton_on_cpu_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", torch.device("cpu"))


def test_auto_picks_cpu_and_falls_back_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    monkeypatch.setattr(scan_mod, "_has_numba", lambda: False)
    monkeypatch.setattr(scan_mod, "_warned", set())
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        assert resolve_backend("auto", torch.device("cpu")) == "logspace"
