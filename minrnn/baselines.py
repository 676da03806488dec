"""Baseline sequence mixers behind the min-RNN block interface: torch.nn.GRU, torch.nn.LSTM, causal attention.

A *mixer* maps a normalised sequence to a sequence of the same width and carries a state::

    y, state = mixer(x, state=None, mask=None)      # x (B, T, D) -> y (B, T, D)
    y_t, state = mixer.step(x_t, state)             # x_t (B, D) -> y_t (B, D)

``mask`` is (B, T) bool, False marking padding: padded steps leave the state unchanged and their outputs are zero.
:class:`minrnn.blocks.ResidualBlock` wraps any mixer; :func:`minrnn.blocks.build_backbone` picks one by name.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionMixer", "KVCache", "TorchRNNMixer", "compact_left", "uncompact"]


def compact_left(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Move each row's real steps to the front, keeping their order.

    ``x`` (B, T, D), ``mask`` (B, T) bool -> ``(x_c, order, lengths)``: ``x_c[b, j] = x[b, order[b, j]]``, the first
    ``lengths[b]`` entries of each row being its real steps. Works for any mask (left, right or inner padding).
    """
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T): real steps first
    x_c = torch.gather(x, 1, order[..., None].expand_as(x))
    return x_c, order, mask.sum(dim=1)


def uncompact(y_c: Tensor, order: Tensor, mask: Tensor) -> Tensor:
    """Inverse of :func:`compact_left`: ``y_c`` (B, T, D) back to original positions, zeros at padded steps."""
    y = torch.empty_like(y_c).scatter_(1, order[..., None].expand_as(y_c), y_c)
    return y * mask[..., None].to(y.dtype)


class TorchRNNMixer(nn.Module):
    """``torch.nn.GRU`` or ``torch.nn.LSTM`` (one layer, width ``dim``) — the paper's "traditional" RNNs.

    Padding: the real steps of each row are moved to the front (:func:`compact_left`) and the RNN runs unmasked
    over them (steps past a row's length are computed and discarded). No PackedSequence: on CPU the packed
    path slices the packed data once per step, and each slice's backward allocates a gradient the size of the
    whole sequence, so it costs O(T^2) (43x an unmasked call at T=600, measured). The state after a row's last
    real step is gathered from the outputs (GRU: the output is the state) or, for the LSTM's cell state, taken
    at segment ends: one RNN call per distinct row length, each continuing from the previous one's state.
    State: ``h`` (1, B, D) for GRU, ``(h, c)`` for LSTM.
    """

    def __init__(self, dim: int, kind: str = "gru") -> None:
        super().__init__()
        if kind not in ("gru", "lstm"):
            raise ValueError(f"kind must be 'gru' or 'lstm', got {kind!r}")
        self.kind = kind
        self.rnn = (nn.GRU if kind == "gru" else nn.LSTM)(dim, dim, batch_first=True)

    def forward(self, x: Tensor, state: Any = None, mask: Tensor | None = None) -> tuple[Tensor, Any]:
        if mask is None or bool(mask.all()):
            return self.rnn(x, state)
        bsz, steps, dim = x.shape
        x_c, order, lengths = compact_left(x, mask)
        ends = sorted(set(lengths.tolist()) - {0})  # distinct row lengths (one host sync)
        if state is None:
            zero = x.new_zeros(1, bsz, dim)
            state = zero if self.kind == "gru" else (zero, zero)
        if not ends:  # every row is padding: outputs zero, state unchanged
            return x.new_zeros(bsz, steps, dim), state
        n = ends[-1]  # no row has real steps past n
        if self.kind == "gru":
            y_c, _ = self.rnn(x_c[:, :n], state)
            idx = (lengths - 1).clamp_min(0)[:, None, None].expand(-1, 1, dim)
            h_last = torch.gather(y_c, 1, idx).transpose(0, 1)  # (1, B, D): output at each row's last real step
            new_state: Any = torch.where((lengths > 0)[None, :, None], h_last, state)
        else:
            outs, start, cur, new_state = [], 0, state, state
            for end in ends:
                y_s, cur = self.rnn(x_c[:, start:end], cur)
                outs.append(y_s)
                sel = (lengths == end)[None, :, None]
                new_state = tuple(torch.where(sel, c, o) for c, o in zip(cur, new_state, strict=True))
                start = end
            y_c = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if n < steps:
            y_c = F.pad(y_c, (0, 0, 0, steps - n))
        return uncompact(y_c, order, mask), new_state

    def step(self, x_t: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        y, state = self.rnn(x_t[:, None], state)
        return y[:, 0], state

    def reset_state(self, state: Any, done: Tensor) -> Any:
        """Put rows where ``done`` (B,) is True back to the initial (zero) state."""
        if state is None:
            return None
        keep = (~done).to(x_dtype(state))[None, :, None]
        if isinstance(state, tuple):
            return tuple(s * keep for s in state)
        return state * keep


def x_dtype(state: Any) -> torch.dtype:
    return (state[0] if isinstance(state, tuple) else state).dtype


class KVCache:
    """Keys and values seen so far: ``k``, ``v`` (B, nh, L, hs) and ``valid`` (B, L) bool. Grows without bound."""

    def __init__(self, k: Tensor, v: Tensor, valid: Tensor) -> None:
        self.k, self.v, self.valid = k, v, valid

    def __len__(self) -> int:
        return self.k.shape[2]


class AttentionMixer(nn.Module):
    """Causal multi-head self-attention on ``F.scaled_dot_product_attention``, with a KV cache for stepping.

    No positional encoding (like kzl/decision-transformer, which drops GPT-2's): callers add timestep
    embeddings. Padded keys are masked; every query may also see its own key, so an all-padding row yields
    finite outputs (zeroed afterwards). The cache is unbounded: ``step`` costs O(L) at cache length L.
    """

    def __init__(self, dim: int, n_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, state: KVCache | None = None, mask: Tensor | None = None) -> tuple[Tensor, KVCache]:
        bsz, steps, dim = x.shape
        q, k, v = (t.view(bsz, steps, self.n_heads, -1).transpose(1, 2) for t in self.qkv(x).split(dim, dim=2))
        valid = mask if mask is not None else torch.ones(bsz, steps, dtype=torch.bool, device=x.device)
        if state is not None:
            k, v = torch.cat([state.k, k], dim=2), torch.cat([state.v, v], dim=2)
            valid = torch.cat([state.valid, valid], dim=1)
        p = self.dropout if self.training else 0.0
        if state is None and mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            past = k.shape[2] - steps  # query i sits at absolute position past + i
            qpos = torch.arange(steps, device=x.device)[:, None] + past
            kpos = torch.arange(k.shape[2], device=x.device)[None, :]
            allowed = (kpos <= qpos)[None] & valid[:, None, :]  # (B, T, L)
            allowed = allowed | (kpos == qpos)[None]  # own key: keeps all-padding rows finite
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], dropout_p=p)
        y = self.out(y.transpose(1, 2).reshape(bsz, steps, dim))
        if mask is not None:
            y = y * mask[..., None].to(y.dtype)
        return y, KVCache(k, v, valid)

    def step(self, x_t: Tensor, state: KVCache | None = None) -> tuple[Tensor, KVCache]:
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state

    def reset_state(self, state: KVCache | None, done: Tensor) -> KVCache | None:
        """Hide the cached keys of rows where ``done`` (B,) is True, as if their episode had just begun."""
        if state is None:
            return None
        return KVCache(state.k, state.v, state.valid & ~done[:, None])
