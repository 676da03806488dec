"""The scan on flash-linear-attention's HGRN kernels (optional extra ``fla``: ``pip install 'minrnn-rl[fla]'``).

HGRN (Qin et al. 2023, "Hierarchically Gated Recurrent Neural Network") runs ``h_t = exp(g_t) * h_{t-1} + x_t`` per
channel, in (B, T, D) layout (fla-org/flash-linear-attention, ``fla/ops/hgrn/naive.py``, ``naive_recurrent_hgrn``).
That is our recurrence ``h_t = a_t h_{t-1} + b_t`` with the gate in log form::

    g = log a    (clamped at -80: exp(-80) is 0 at fp32 resolution and keeps the backward finite; a = 0 -> g = -80)
    x = b

Two kernels, two back-ends:

- ``"fla"``: ``fla.ops.hgrn.chunk_hgrn`` (``fla/ops/hgrn/chunk.py``): chunks of 128 steps, cumulative gates per chunk,
  then a pass that carries the state across chunks. Its backward returns no gradient for ``initial_state``, so a
  given ``h0`` is folded into the first input instead, ``x_0 = b_0 + a_0 h0``; autograd then differentiates ``h0``.
- ``"fla_fused"``: ``fla.ops.hgrn.fused_recurrent_hgrn`` (``fla/ops/hgrn/fused_recurrent.py``): a step loop like our
  ``"triton"`` kernel, with ``h0`` passed as ``initial_state`` (its backward returns ``dh0``).

Both accumulate in fp32 whatever the input dtype (fp64 inputs get fp32 accuracy) and return ``h`` in the dtype of
``b``; the final state is ``h[:, -1]`` (the layers read it there), so ``output_final_state`` is not requested.
fla autotunes its kernels on the first call for each shape: time only after a warm-up call.

Under ``TRITON_INTERPRET=1`` (CPU) ``fused_recurrent_hgrn`` runs once Triton's autotuner is told not to benchmark
(tests/minrnn/test_minrnn_fla.py does that); ``chunk_hgrn`` does not run in the interpreter (Triton 3.9: "mask has
unsupported dtype"), so it is checked on CUDA only.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["FLA_BACKENDS", "has_fla", "scan_fla"]

FLA_BACKENDS = ("fla", "fla_fused")
_LOG_A_MIN = -80.0
MISSING = (
    "scan backend {name!r} needs flash-linear-attention (module fla.ops.hgrn), which is not installed: "
    "pip install 'minrnn-rl[fla]' (or: pip install fla-core einops)"
)


def has_fla() -> bool:
    """Whether ``fla.ops.hgrn`` imports (the package ``fla-core`` and its dependency ``einops``)."""
    try:
        import fla.ops.hgrn  # noqa: F401
    except ImportError:
        return False
    return True


def _kernels() -> tuple:
    try:
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
    except ImportError as e:
        raise ImportError(MISSING.format(name="fla")) from e
    return chunk_hgrn, fused_recurrent_hgrn


def scan_fla(a: Tensor, b: Tensor, h0: Tensor | None = None, fused: bool = False) -> Tensor:
    """``h_t = a_t h_{t-1} + b_t`` on fla's HGRN kernels. ``a``, ``b`` (B, T, D); ``h0`` (B, D) or None -> h (B, T, D).

    ``a`` must lie in [0, 1] (the gate; it enters as ``log a``). ``fused``: ``fused_recurrent_hgrn`` instead of
    ``chunk_hgrn`` (module docstring). Differentiable in ``a``, ``b`` and ``h0``.
    """
    chunk_hgrn, fused_recurrent_hgrn = _kernels()
    if a.shape[1] == 0:
        return b.new_zeros(b.shape)
    log_a = a.log().clamp_min(_LOG_A_MIN)  # (B, T, D): HGRN's g
    if fused:
        init = None if h0 is None else h0.float()
        h, _ = fused_recurrent_hgrn(b, log_a.to(b.dtype), initial_state=init, output_final_state=False)
        return h
    if h0 is not None:  # chunk_hgrn's backward drops d(initial_state): fold h0 into the first input instead
        first = b[:, :1] + a[:, :1] * h0.to(b.dtype)[:, None]  # (B, 1, D): a_0 h0 + b_0
        b = torch.cat([first, b[:, 1:]], dim=1)
    h, _ = chunk_hgrn(b, log_a.to(b.dtype), initial_state=None, output_final_state=False)
    return h
