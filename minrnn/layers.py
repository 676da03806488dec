"""minGRU and minLSTM layers (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201).

Both layers return the hidden sequence itself, with no output projection (blocks add one). Gates depend on the
input only, so the whole sequence reduces to one linear recurrence ``h_t = a_t h_{t-1} + b_t`` that
:func:`minrnn.scan.scan` evaluates in parallel over time; :meth:`step` is the O(1) recurrent update.

>>> import torch
>>> layer = MinGRU(4, 8).eval()
>>> x = torch.randn(2, 5, 4)
>>> h, h_last = layer(x)
>>> h.shape, h_last.shape
(torch.Size([2, 5, 8]), torch.Size([2, 8]))
>>> s = None
>>> for t in range(5):
...     s = layer.step(x[:, t], s)
>>> bool(torch.allclose(s, h_last, atol=1e-5))
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minrnn.scan import resolve_backend, scan, scan_logspace

__all__ = ["MinGRU", "MinLSTM", "g", "log_g"]


def g(x: Tensor) -> Tensor:
    """Positive activation of the candidate state (paper §3.1.2): ``x + 0.5`` if ``x >= 0`` else ``sigmoid(x)``."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log(g(x))`` computed without forming ``g``: ``log(relu(x) + 0.5)`` or ``-softplus(-x)``."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Gates and scan run in at least fp32: a forget gate of 0.999 is 1.0 in bf16, hence fp32 accumulation."""
    return torch.promote_types(dtype, torch.float32)


class _MinRNN(nn.Module):
    """Shared plumbing: input checks, initial state, masking and back-end dispatch."""

    n_proj: int  # number of dim_hidden-wide projections fused in ``self.proj``

    def __init__(self, dim_in: int, dim_hidden: int, learnable_h0: bool = False) -> None:
        super().__init__()
        if dim_in < 1 or dim_hidden < 1:
            raise ValueError(f"dim_in and dim_hidden must be >= 1, got {dim_in} and {dim_hidden}")
        self.dim_in, self.dim_hidden = dim_in, dim_hidden
        self.proj = nn.Linear(dim_in, self.n_proj * dim_hidden)  # all gate projections fused in one matmul
        # Learnable initial state, passed through g to keep it positive (official code, models/minRNNs.py).
        self.h0_raw = nn.Parameter(torch.zeros(dim_hidden)) if learnable_h0 else None

    def _gate_logits(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """``k`` (..., n_proj*H) -> ``(k_z, k_h)`` with ``a = 1 - sigmoid(k_z)``, ``b = sigmoid(k_z) g(k_h)``."""
        raise NotImplementedError

    def _coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Gate pre-activations ``k`` (..., n_proj*H) -> ``(a, b)``, each (..., H)."""
        raise NotImplementedError

    def _log_coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Gate pre-activations ``k`` (..., n_proj*H) -> ``(log a, log b)``, each (..., H)."""
        raise NotImplementedError

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
        """The state used when ``h0``/``h`` is None: zeros, or ``g(h0_raw)`` if learnable. Shape (B, H)."""
        if self.h0_raw is None:
            return torch.zeros(batch, self.dim_hidden, device=device, dtype=dtype)
        return g(self.h0_raw).to(dtype).expand(batch, -1)

    def forward(
        self, x: Tensor, h0: Tensor | None = None, mask: Tensor | None = None, backend: str = "auto"
    ) -> tuple[Tensor, Tensor]:
        """Run the layer over a sequence.

        Args:
            x: input (B, T, dim_in).
            h0: positive initial state (B, H), or None for the initial state (zeros or learnable).
            mask: (B, T) bool, False marks padding; a padded step keeps the state (a=1, b=0).
            backend: scan back-end, see :func:`minrnn.scan.scan`.

        Returns:
            ``(h, h_last)``: hidden sequence (B, T, H) and the state after the last step (B, H), in fp32 or wider.
        """
        if x.dim() != 3 or x.shape[-1] != self.dim_in:
            raise ValueError(f"{type(self).__name__} expects x of shape (B, T, {self.dim_in}); got {tuple(x.shape)}")
        bsz, steps, _ = x.shape
        if mask is not None and mask.shape != (bsz, steps):
            raise ValueError(f"mask must have shape (B, T) = {(bsz, steps)}; got {tuple(mask.shape)}")
        if h0 is not None and h0.shape != (bsz, self.dim_hidden):
            raise ValueError(f"h0 must have shape (B, H) = {(bsz, self.dim_hidden)}; got {tuple(h0.shape)}")
        k = self.proj(x)
        cdt = _compute_dtype(k.dtype)
        k = k.to(cdt)
        if h0 is None and self.h0_raw is not None:
            h0 = self.initial_state(bsz, x.device, cdt)
        if h0 is not None:
            h0 = h0.to(cdt)
        name = resolve_backend(backend, x.device)
        if name == "cpu":  # fused gates + scan (numba); the minGRU form covers minLSTM with k_z = log(i/f)
            from minrnn.scan_cpu import gated_scan_cpu

            k_z, k_h = self._gate_logits(k)
            h = gated_scan_cpu(k_z, k_h, h0, mask)  # padded steps get z = 0 (a = 1, b = 0) inside the kernel call
        elif name == "logspace":
            log_a, log_b = self._log_coeffs(k)
            if mask is not None:
                pad = ~mask[..., None]
                log_a, log_b = log_a.masked_fill(pad, 0.0), log_b.masked_fill(pad, float("-inf"))
            # A given state enters as log(h0), not log_g(h0) (github.com/lucidrains/minGRU-pytorch/issues/9).
            h = scan_logspace(log_a, log_b, None if h0 is None else h0.log()).to(cdt)
        else:
            a, b = self._coeffs(k)
            if mask is not None:
                pad = ~mask[..., None]
                a, b = a.masked_fill(pad, 1.0), b.masked_fill(pad, 0.0)
            h = scan(a, b, h0, backend=name)
        if steps == 0:
            h_last = h0 if h0 is not None else self.initial_state(bsz, x.device, cdt)
        else:
            h_last = h[:, -1]
        return h, h_last

    def step(self, x_t: Tensor, h: Tensor | None = None) -> Tensor:
        """One recurrent step: ``x_t`` (B, dim_in), ``h`` (B, H) or None -> ``h_t`` (B, H). O(1) in T."""
        if x_t.dim() != 2 or x_t.shape[-1] != self.dim_in:
            raise ValueError(
                f"{type(self).__name__}.step expects x_t of shape (B, {self.dim_in}); got {tuple(x_t.shape)}"
            )
        k = self.proj(x_t)
        k = k.to(_compute_dtype(k.dtype))
        a, b = self._coeffs(k)
        if h is None:
            if self.h0_raw is None:
                return b
            h = self.initial_state(x_t.shape[0], x_t.device, k.dtype)
        return torch.addcmul(b, a, h.to(k.dtype))


class MinGRU(_MinRNN):
    """minGRU (paper §3.1): ``z = σ(W_z x)``, ``h~ = g(W_h x)``, ``h_t = (1 - z) h_{t-1} + z h~``.

    Args:
        dim_in: input width.
        dim_hidden: state width H.
        learnable_h0: learn the initial state (through g) instead of starting from zeros.
    """

    n_proj = 2

    def _gate_logits(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = k.chunk(2, dim=-1)
        return k_z, k_h

    def _coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = k.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        return 1.0 - z, z * g(k_h)  # a = 1 - z = σ(-k_z)

    def _log_coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = k.chunk(2, dim=-1)
        return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 - z), log z + log h~ (§3.1.3)

    def step(self, x_t: Tensor, h: Tensor | None = None) -> Tensor:
        """One recurrent step, in as few ops as possible (acting is overhead-bound at small batch):
        one sigmoid over both halves, then ``h + z (g(k_h) - h)``, the CPU scan kernel's own form."""
        if x_t.dim() != 2 or x_t.shape[-1] != self.dim_in:
            raise ValueError(f"MinGRU.step expects x_t of shape (B, {self.dim_in}); got {tuple(x_t.shape)}")
        k = self.proj(x_t)
        k = k.to(_compute_dtype(k.dtype))
        sig = torch.sigmoid(k)
        z, k_h = sig[:, : self.dim_hidden], k[:, self.dim_hidden :]
        h_tilde = torch.where(k_h >= 0, k_h + 0.5, sig[:, self.dim_hidden :])  # g(k_h)
        if h is None:
            if self.h0_raw is None:
                return z * h_tilde
            h = self.initial_state(x_t.shape[0], x_t.device, k.dtype)
        h = h.to(k.dtype)
        return torch.addcmul(h, z, h_tilde - h)


class MinLSTM(_MinRNN):
    """minLSTM (paper §3.2) with the length-independent normalisation ``f' = f / (f + i)``, ``i' = i / (f + i)``.

    ``h_t = f'_t h_{t-1} + i'_t g(W_h x_t)``, with ``f = σ(W_f x)``, ``i = σ(W_i x)``.

    Args:
        dim_in: input width.
        dim_hidden: state width H.
        learnable_h0: learn the initial state (through g) instead of starting from zeros.
        forget_bias: added to the forget-gate bias at init; > 0 favours remembering (official code's init).
    """

    n_proj = 3

    def __init__(self, dim_in: int, dim_hidden: int, learnable_h0: bool = False, forget_bias: float = 0.0) -> None:
        super().__init__(dim_in, dim_hidden, learnable_h0)
        with torch.no_grad():
            self.proj.bias[:dim_hidden] += forget_bias

    @staticmethod
    def _d(k_f: Tensor, k_i: Tensor) -> Tensor:
        """``d = log i - log f``, so that ``f' = σ(-d)`` and ``i' = σ(d)`` (Feng et al. 2024, §3.2), stable for any
        logits."""
        return F.softplus(-k_f) - F.softplus(-k_i)

    def _gate_logits(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        return self._d(k_f, k_i), k_h

    def _coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        d = self._d(k_f, k_i)
        return torch.sigmoid(-d), torch.sigmoid(d) * g(k_h)

    def _log_coeffs(self, k: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        d = self._d(k_f, k_i)
        return -F.softplus(d), -F.softplus(-d) + log_g(k_h)
