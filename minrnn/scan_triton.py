"""Triton scan for CUDA: ``h_t = a_t h_{t-1} + b_t`` in (B, T, D) layout, forward and backward kernels.

Each program owns one batch row and ``BLOCK_D`` contiguous channels and walks T in order (a fused recurrent scan,
like fla's ``fused_recurrent_hgrn``): loads are coalesced along D, the state stays in registers, and each element
is read and written once, which is what a memory-bound scan needs (ANCHORS §5). Any T works; D is masked.

- Accumulation is fp32 for fp16/bf16/fp32 inputs (fp64 for fp64), and ``h`` is stored in the input dtype.
- Backward is one reversed pass, ``g_t = dy_t + a_{t+1} g_{t+1}``, ``db_t = g_t``, ``da_t = g_t h_{t-1}``. It keeps no
  intermediates from the forward: it re-reads ``a`` and the output ``h`` (for ``h_{t-1}``), nothing else.
- On a machine without a GPU, set ``TRITON_INTERPRET=1`` *before* importing triton to run it on CPU tensors
  (slow; used by the tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["scan_triton"]


@triton.jit
def _scan_fwd_kernel(A, Bv, H0, H, T, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = offs < D
    base = pid_b * T * D + offs  # (B, T, D) contiguous
    if HAS_H0:
        h = tl.load(H0 + pid_b * D + offs, mask=m, other=0.0).to(ACC)
    else:
        h = tl.zeros([BLOCK_D], dtype=ACC)
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
    if HAS_H0:
        h0 = tl.load(H0 + pid_b * D + offs, mask=m, other=0.0).to(ACC)
    else:
        h0 = tl.zeros([BLOCK_D], dtype=ACC)
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


def _launch(bsz: int, dim: int) -> tuple[tuple[int, int], int, int]:
    block = min(128, max(16, triton.next_power_of_2(dim)))
    # Few batch rows: narrower blocks give the GPU more programs to keep memory busy.
    while block > 32 and bsz * triton.cdiv(dim, block) < 256:
        block //= 2
    return (bsz, triton.cdiv(dim, block)), block, max(1, block // 64)


def _acc(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


class _ScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:  # type: ignore[override]
        a, b = a.contiguous(), b.contiguous()
        h0c = h0.contiguous() if h0 is not None else None
        bsz, steps, dim = a.shape
        h = torch.empty_like(a)
        grid, block, warps = _launch(bsz, dim)
        _scan_fwd_kernel[grid](
            a, b, h0c if h0c is not None else a, h, steps, dim, h0c is not None, block, _acc(a.dtype), num_warps=warps
        )
        ctx.save_for_backward(a, h, h0c)
        ctx.has_h0 = h0c is not None
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:  # type: ignore[override]
        a, h, h0 = ctx.saved_tensors
        bsz, steps, dim = a.shape
        dy = dy.contiguous()
        da, db = torch.empty_like(a), torch.empty_like(a)
        dh0 = torch.empty(bsz, dim, dtype=h0.dtype if h0 is not None else a.dtype, device=a.device)
        grid, block, warps = _launch(bsz, dim)
        _scan_bwd_kernel[grid](
            a,
            h,
            h0 if h0 is not None else a,
            dy,
            da,
            db,
            dh0,
            steps,
            dim,
            ctx.has_h0,
            block,
            _acc(a.dtype),
            num_warps=warps,
        )
        return da, db, dh0 if ctx.has_h0 else None


def scan_triton(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` with Triton. ``a``, ``b`` (B, T, D); ``h0`` (B, D) or None -> ``h`` (B, T, D).

    Inputs of any float dtype; accumulation in fp32 (fp64 for fp64 inputs); ``h`` has the dtype of ``a``.
    """
    if b.dtype != a.dtype:
        b = b.to(a.dtype)
    if a.shape[1] == 0:
        return a.new_zeros(a.shape)
    return _ScanTriton.apply(a, b, None if h0 is None else h0.to(a.dtype))
