"""Triton scan for CUDA: ``h_t = a_t h_{t-1} + b_t`` in (B, T, D) layout, forward and backward kernels.

Each program owns one batch row and ``BLOCK_D`` contiguous channels and walks T in order (a fused recurrent scan,
like fla's ``fused_recurrent_hgrn``): loads are coalesced along D, the state stays in registers, and each element
is read and written once, which is what a memory-bound scan needs. Any T works; D is masked.

- Accumulation is fp32 for fp16/bf16/fp32 inputs (fp64 for fp64), and ``h`` is stored in the input dtype.
- Backward is one reversed pass, ``g_t = dy_t + a_{t+1} g_{t+1}``, ``db_t = g_t``, ``da_t = g_t h_{t-1}``. It keeps no
  intermediates from the forward: it re-reads ``a`` and the output ``h`` (for ``h_{t-1}``), nothing else.
- On a machine without a GPU, set ``TRITON_INTERPRET=1`` *before* importing triton to run it on CPU tensors
  (slow; used by the tests).

``scan_triton(..., chunked=True)`` (scan back-end ``"triton_chunked"``) is the chunked variant: each iteration loads a
``CHUNK x BLOCK_D`` tile at once, scans it in registers with ``tl.associative_scan`` over the pairs ``(a_t, b_t)``
(composition ``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``) and carries the state to the next tile. The step loop
waits on its own loads every time step; measured on an H200 it reached 156 GB/s, 3 % of the memory's peak, at B=8,
T=4096, D=1536 (docs/RESULTS.md, "Speed and memory"). The chunked kernel issues CHUNK times more independent loads
per wait. It is tested for correctness here; its speed is not measured yet, so ``"auto"`` still picks the step loop.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["scan_triton"]


@triton.jit
def _load_h0(H0, pid_b, offs, m, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    """The initial state of one program's channels: ``h0[pid_b, offs]``, or zeros without one."""
    h = tl.zeros([BLOCK_D], dtype=ACC)
    if HAS_H0:
        h = tl.load(H0 + pid_b * D + offs, mask=m, other=0.0).to(ACC)
    return h


@triton.jit
def _scan_fwd_kernel(A, Bv, H0, H, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = offs < D
    base = pid_b * T * D + offs  # (B, T, D) contiguous
    h = _load_h0(H0, pid_b, offs, m, D, HAS_H0, BLOCK_D, ACC)
    for t in range(T):
        p = base + t * D
        a = tl.load(A + p, mask=m, other=0.0).to(ACC)
        b = tl.load(Bv + p, mask=m, other=0.0).to(ACC)
        h = a * h + b
        tl.store(H + p, h.to(H.dtype.element_ty), mask=m)


@triton.jit
def _scan_bwd_kernel(A, H, H0, DY, DA, DB, DH0, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = offs < D
    base = pid_b * T * D + offs
    h0 = _load_h0(H0, pid_b, offs, m, D, HAS_H0, BLOCK_D, ACC)
    g = tl.zeros([BLOCK_D], dtype=ACC)
    a_next = tl.zeros([BLOCK_D], dtype=ACC)  # a_{t+1}; zero past the end
    for i in range(T):
        t = T - 1 - i
        p = base + t * D
        g = tl.load(DY + p, mask=m, other=0.0).to(ACC) + a_next * g
        h_prev = tl.load(H + base + tl.maximum(t - 1, 0) * D, mask=m, other=0.0).to(ACC)
        h_prev = tl.where(t > 0, h_prev, h0)  # h_{-1} = h0
        tl.store(DB + p, g.to(DB.dtype.element_ty), mask=m)
        tl.store(DA + p, (g * h_prev).to(DA.dtype.element_ty), mask=m)
        a_next = tl.load(A + p, mask=m, other=0.0).to(ACC)
    tl.store(DH0 + pid_b * D + offs, (a_next * g).to(DH0.dtype.element_ty), mask=m)


@triton.jit
def _compose(a1, b1, a2, b2):
    """(a1, b1) then (a2, b2): h -> a2 (a1 h + b1) + b2."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _scan_fwd_chunk_kernel(
    A, Bv, H0, H, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr, ACC: tl.constexpr
):
    pid_b = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    rows = tl.arange(0, CHUNK)
    md = offs < D
    base = pid_b * T * D
    h = _load_h0(H0, pid_b, offs, md, D, HAS_H0, BLOCK_D, ACC)
    for t0 in range(0, T, CHUNK):
        t = t0 + rows
        m = (t < T)[:, None] & md[None, :]
        p = base + t[:, None] * D + offs[None, :]
        a = tl.load(A + p, mask=m, other=1.0).to(ACC)  # rows past T: a=1, b=0 carry the state unchanged
        b = tl.load(Bv + p, mask=m, other=0.0).to(ACC)
        ca, cb = tl.associative_scan((a, b), 0, _compose)
        hs = ca * h[None, :] + cb
        tl.store(H + p, hs.to(H.dtype.element_ty), mask=m)
        h = tl.sum(tl.where((rows == CHUNK - 1)[:, None], hs, 0.0), axis=0)


@triton.jit
def _scan_bwd_chunk_kernel(
    A, H, H0, DY, DA, DB, DH0, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr,
    ACC: tl.constexpr,
):  # fmt: skip
    pid_b = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    rows = tl.arange(0, CHUNK)
    md = offs < D
    base = pid_b * T * D
    h0 = _load_h0(H0, pid_b, offs, md, D, HAS_H0, BLOCK_D, ACC)
    g = tl.zeros([BLOCK_D], dtype=ACC)  # g at the first row of the tile after this one (0 past the end)
    n_chunks = tl.cdiv(T, CHUNK)
    for i in range(n_chunks):
        t = (n_chunks - 1 - i) * CHUNK + rows
        m = (t < T)[:, None] & md[None, :]
        p = base + t[:, None] * D + offs[None, :]
        # g_t = dy_t + a_{t+1} g_{t+1}: the same recurrence, run from the end, with a_{t+1} (0 at and past T)
        a_next = tl.load(A + p + D, mask=(t + 1 < T)[:, None] & md[None, :], other=0.0).to(ACC)
        dy = tl.load(DY + p, mask=m, other=0.0).to(ACC)
        ca, cb = tl.associative_scan((a_next, dy), 0, _compose, reverse=True)
        gs = ca * g[None, :] + cb
        h_prev = tl.load(H + p - D, mask=(t >= 1)[:, None] & m, other=0.0).to(ACC)
        h_prev = tl.where((t == 0)[:, None], h0[None, :], h_prev)  # h_{-1} = h0
        tl.store(DB + p, gs.to(DB.dtype.element_ty), mask=m)
        tl.store(DA + p, (gs * h_prev).to(DA.dtype.element_ty), mask=m)
        g = tl.sum(tl.where((rows == 0)[:, None], gs, 0.0), axis=0)
    a0 = tl.load(A + base + offs, mask=md, other=0.0).to(ACC)
    tl.store(DH0 + pid_b * D + offs, (a0 * g).to(DH0.dtype.element_ty), mask=md)


CHUNK = 32  # time steps per tile of the chunked kernels


def _launch(bsz: int, dim: int, chunked: bool) -> tuple[tuple[int, int], int, int]:
    """Grid (batch rows, channel blocks), channels per block, warps. Few batch rows: narrower blocks give the GPU
    more programs to keep memory busy. A chunked tile holds CHUNK rows, so its blocks stay at most 64 channels wide
    (64 bf16 values: one 128-byte line per row)."""
    widest, narrowest = (64, 16) if chunked else (128, 32)
    block = min(widest, max(16, triton.next_power_of_2(dim)))
    while block > narrowest and bsz * triton.cdiv(dim, block) < 256:
        block //= 2
    return (bsz, triton.cdiv(dim, block)), block, 4 if chunked else max(1, block // 64)


def _acc(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


class _ScanTriton(torch.autograd.Function):
    """Forward and backward kernels as one autograd op; ``vmap`` folds a mapped dim into the batch (used by
    agents/ensemble.py, which vmaps N seeds of a model), so it needs ``setup_context`` apart from ``forward``."""

    @staticmethod
    def forward(a: Tensor, b: Tensor, h0: Tensor | None, chunked: bool) -> Tensor:  # type: ignore[override]
        a, b = a.contiguous(), b.contiguous()
        h0c = h0.contiguous() if h0 is not None else None
        bsz, steps, dim = a.shape
        h = torch.empty_like(a)
        args = (a, b, h0c if h0c is not None else a, h, steps, dim, h0c is not None)
        grid, block, warps = _launch(bsz, dim, chunked)
        if chunked:
            _scan_fwd_chunk_kernel[grid](*args, block, CHUNK, _acc(a.dtype), num_warps=warps)
        else:
            _scan_fwd_kernel[grid](*args, block, _acc(a.dtype), num_warps=warps)
        return h

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: Tensor) -> None:  # type: ignore[override]
        a, _, h0, chunked = inputs
        ctx.save_for_backward(a.contiguous(), output, h0.contiguous() if h0 is not None else None)
        ctx.has_h0 = h0 is not None
        ctx.chunked = chunked

    @staticmethod
    def vmap(info, in_dims: tuple, a: Tensor, b: Tensor, h0: Tensor | None, chunked: bool) -> tuple[Tensor, int]:
        """Under ``vmap`` over N: a, b (N, B, T, D) and h0 (N, B, D) scan as one batch of N*B rows."""
        n = info.batch_size

        def fold(x: Tensor, dim: int | None) -> Tensor:  # -> (N*B, ...)
            x = x.movedim(dim, 0) if dim is not None else x.expand(n, *x.shape)
            return x.reshape(n * x.shape[1], *x.shape[2:])

        h0f = None if h0 is None else fold(h0, in_dims[2])
        h = _ScanTriton.apply(fold(a, in_dims[0]), fold(b, in_dims[1]), h0f, chunked)
        return h.reshape(n, -1, *h.shape[1:]), 0

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor, Tensor, Tensor | None, None]:  # type: ignore[override]
        a, h, h0 = ctx.saved_tensors
        bsz, steps, dim = a.shape
        dy = dy.contiguous()
        da, db = torch.empty_like(a), torch.empty_like(a)
        dh0 = torch.empty(bsz, dim, dtype=h0.dtype if h0 is not None else a.dtype, device=a.device)
        args = (a, h, h0 if h0 is not None else a, dy, da, db, dh0, steps, dim, ctx.has_h0)
        grid, block, warps = _launch(bsz, dim, ctx.chunked)
        if ctx.chunked:
            _scan_bwd_chunk_kernel[grid](*args, block, CHUNK, _acc(a.dtype), num_warps=warps)
        else:
            _scan_bwd_kernel[grid](*args, block, _acc(a.dtype), num_warps=warps)
        return da, db, dh0 if ctx.has_h0 else None, None


def scan_triton(a: Tensor, b: Tensor, h0: Tensor | None = None, chunked: bool = False) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` with Triton. ``a``, ``b`` (B, T, D); ``h0`` (B, D) or None -> ``h`` (B, T, D).

    Inputs of any float dtype; accumulation in fp32 (fp64 for fp64 inputs); ``h`` has the dtype of ``a``.
    ``chunked``: the tile-at-a-time kernels instead of the step loop (module docstring).
    """
    if b.dtype != a.dtype:
        b = b.to(a.dtype)
    if a.shape[1] == 0:
        return a.new_zeros(a.shape)
    return _ScanTriton.apply(a, b, None if h0 is None else h0.to(a.dtype), chunked)
