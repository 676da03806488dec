"""Independent float64 references: plain Python loops over time, written from the paper's equations (§3)."""

from __future__ import annotations

import torch
from torch import Tensor


def ref_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t in float64, one step at a time."""
    a, b = a.double(), b.double()
    h = torch.zeros_like(a[:, 0]) if h0 is None else h0.double()
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def _g(x: Tensor) -> Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def ref_mingru(x: Tensor, w: Tensor, bias: Tensor, h0: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """minGRU, §3.1: z = σ(W_z x), h~ = g(W_h x), h = (1 - z) h + z h~. ``w`` (2H, Din) is [W_z; W_h]."""
    x, w, bias = x.double(), w.double(), bias.double()
    hid = w.shape[0] // 2
    h = torch.zeros(x.shape[0], hid, dtype=torch.float64) if h0 is None else h0.double()
    out = []
    for t in range(x.shape[1]):
        k = x[:, t] @ w.T + bias
        z, ht = torch.sigmoid(k[:, :hid]), _g(k[:, hid:])
        new = (1 - z) * h + z * ht
        h = new if mask is None else torch.where(mask[:, t, None], new, h)
        out.append(h)
    return torch.stack(out, 1)


def ref_minlstm(x: Tensor, w: Tensor, bias: Tensor, h0: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """minLSTM, §3.2 with f' = f / (f + i), i' = i / (f + i). ``w`` (3H, Din) is [W_f; W_i; W_h]."""
    x, w, bias = x.double(), w.double(), bias.double()
    hid = w.shape[0] // 3
    h = torch.zeros(x.shape[0], hid, dtype=torch.float64) if h0 is None else h0.double()
    out = []
    for t in range(x.shape[1]):
        k = x[:, t] @ w.T + bias
        f, i, ht = torch.sigmoid(k[:, :hid]), torch.sigmoid(k[:, hid : 2 * hid]), _g(k[:, 2 * hid :])
        new = f / (f + i) * h + i / (f + i) * ht
        h = new if mask is None else torch.where(mask[:, t, None], new, h)
        out.append(h)
    return torch.stack(out, 1)
