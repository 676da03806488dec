"""Residual pre-norm blocks and stacks over any sequence mixer (min-RNNs, nn.GRU/LSTM, causal attention).

Block, as in the official code (BorealisAI/minRNNs, models/minRNNs.py)::

    x = x + conv(x)                   # optional causal depthwise conv
    x = x + drop(mixer(norm1(x)))     # minGRU/minLSTM (+ out proj), nn.GRU/LSTM, or causal attention
    x = x + drop(mlp(norm2(x)))

A :class:`Stack` of blocks has ``forward(x, state=None, mask=None) -> (y, state)`` for training on whole windows
and ``step(x_t, state) -> (y_t, state)`` for acting one step at a time. ``state`` is opaque (a list with one entry
per block); None is the initial state.

>>> import torch
>>> stack = build_backbone("mingru", dim=16, depth=2).eval()
>>> x = torch.randn(3, 7, 16)
>>> y, state = stack(x)
>>> s, outs = None, []
>>> for t in range(7):
...     y_t, s = stack.step(x[:, t], s)
...     outs.append(y_t)
>>> bool(torch.allclose(torch.stack(outs, 1), y, atol=1e-5))
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from minrnn.baselines import AttentionMixer, TorchRNNMixer, compact_left
from minrnn.layers import MinGRU, MinLSTM

__all__ = ["BACKBONES", "CausalDepthwiseConv", "MinRNNMixer", "ResidualBlock", "Stack", "build_backbone"]

BACKBONES = ("mingru", "minlstm", "gru", "lstm", "transformer")


class MinRNNMixer(nn.Module):
    """minGRU or minLSTM followed by an output projection. State: ``h`` (B, H), H = round(expansion * dim)."""

    def __init__(self, dim: int, cell: str = "mingru", expansion: float = 1.0, backend: str = "auto", **cell_kw: Any):
        super().__init__()
        hidden = max(1, round(expansion * dim))
        if cell == "mingru":
            self.rnn: MinGRU | MinLSTM = MinGRU(dim, hidden, **cell_kw)
        elif cell == "minlstm":
            self.rnn = MinLSTM(dim, hidden, **cell_kw)
        else:
            raise ValueError(f"cell must be 'mingru' or 'minlstm', got {cell!r}")
        self.out = nn.Linear(hidden, dim)
        self.backend = backend

    def forward(self, x: Tensor, state: Tensor | None = None, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, h_last = self.rnn(x, h0=state, mask=mask, backend=self.backend)
        return self.out(h.to(x.dtype)), h_last

    def step(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.rnn.step(x_t, state)
        return self.out(h.to(x_t.dtype)), h

    def reset_state(self, state: Tensor | None, done: Tensor) -> Tensor | None:
        """Put rows where ``done`` (B,) is True back to the initial state."""
        if state is None:
            return None
        init = self.rnn.initial_state(state.shape[0], state.device, state.dtype)
        return torch.where(done[:, None], init, state)


class CausalDepthwiseConv(nn.Module):
    """Causal depthwise 1-D conv over time. State: the last ``kernel - 1`` real inputs (B, kernel - 1, D).

    Padded steps are skipped, not fed as zeros: real steps are compacted first, so padding never shifts the
    buffer (a padded step leaves the state unchanged, like the recurrences).
    """

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        if kernel < 2:
            raise ValueError(f"conv kernel must be >= 2 (or 0 to disable), got {kernel}")
        self.kernel = kernel
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim)

    def forward(self, x: Tensor, state: Tensor | None = None, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        bsz, steps, dim = x.shape
        if state is None:
            state = x.new_zeros(bsz, self.kernel - 1, dim)
        if mask is not None:
            x, order, lengths = compact_left(x, mask)
        ext = torch.cat([state, x], dim=1)  # (B, K-1+T, D)
        y = self.conv(ext.transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        if mask is None:
            return y, ext[:, steps:]
        idx = lengths[:, None] + torch.arange(self.kernel - 1, device=x.device)  # last K-1 real inputs
        new_state = torch.gather(ext, 1, idx[..., None].expand(-1, -1, dim))
        y = torch.empty_like(y).scatter_(1, order[..., None].expand_as(y), y) * mask[..., None].to(y.dtype)
        return y, new_state

    def step(self, x_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = x_t.new_zeros(x_t.shape[0], self.kernel - 1, x_t.shape[1])
        window = torch.cat([state, x_t[:, None]], dim=1)  # (B, K, D)
        y = torch.einsum("bkd,dk->bd", window, self.conv.weight[:, 0]) + self.conv.bias
        return y, window[:, 1:]


#: The MLP's activation: GELU (GPT-2 as published, lucidrains' minGRU) or ReLU (DT's GPT-2 configuration,
#: kzl/decision-transformer gym/experiment.py ``--activation_function relu``, and d3rlpy's D4RL reproduction).
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


class ResidualBlock(nn.Module):
    """Pre-norm residual block around ``mixer``; see the module docstring. State: ``(conv_state, mixer_state)``."""

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        mlp_mult: int = 4,
        dropout: float = 0.0,
        conv_kernel: int = 0,
        activation: str = "gelu",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not valid; use one of {list(ACTIVATIONS)}")
        self.conv = CausalDepthwiseConv(dim, conv_kernel) if conv_kernel else None
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mixer = mixer
        hidden = mlp_mult * dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, state: Any = None, mask: Tensor | None = None, last_only: bool = False
    ) -> tuple[Tensor, Any]:
        """``last_only``: return only the last position's output (B, 1, D); the state still covers every step."""
        conv_state, mix_state = state if state is not None else (None, None)
        if self.conv is not None:
            c, conv_state = self.conv(x, conv_state, mask)
            x = x + c
        y, mix_state = self.mixer(self.norm1(x), mix_state, mask)
        if last_only:  # the MLP is per position: skip it where the output is not wanted
            x, y = x[:, -1:], y[:, -1:]
        if self.training:
            x = x + self.drop(y)
            x = x + self.drop(self.mlp(self.norm2(x)))
        else:  # dropout is the identity in eval: skip its module calls (acting is overhead-bound)
            x = x + y
            x = x + self.mlp(self.norm2(x))
        return x, (conv_state, mix_state)

    def step(self, x_t: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        conv_state, mix_state = state if state is not None else (None, None)
        if self.conv is not None:
            c, conv_state = self.conv.step(x_t, conv_state)
            x_t = x_t + c
        y, mix_state = self.mixer.step(self.norm1(x_t), mix_state)
        if self.training:
            x_t = x_t + self.drop(y)
            x_t = x_t + self.drop(self.mlp(self.norm2(x_t)))
        else:
            x_t = x_t + y
            x_t = x_t + self.mlp(self.norm2(x_t))
        return x_t, (conv_state, mix_state)

    def reset_state(self, state: Any, done: Tensor) -> Any:
        if state is None:
            return None
        conv_state, mix_state = state
        if conv_state is not None:
            conv_state = conv_state * (~done).to(conv_state.dtype)[:, None, None]
        return conv_state, self.mixer.reset_state(mix_state, done)


class Stack(nn.Module):
    """N residual blocks and a final LayerNorm: ``(B, T, dim) -> (B, T, dim)``, with O(1)-state stepping."""

    def __init__(self, dim: int, blocks: list[ResidualBlock], name: str = "") -> None:
        super().__init__()
        self.dim, self.name = dim, name
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: Tensor, state: list[Any] | None = None, mask: Tensor | None = None, last_only: bool = False
    ) -> tuple[Tensor, list]:
        """``x`` (B, T, dim), ``mask`` (B, T) bool (False = padding) -> ``(y (B, T, dim), state)``.

        Padded steps leave the state unchanged, so ``forward(x[:, :t])`` then ``forward(x[:, t:], state)``
        equals ``forward(x)``, and a left-padded window gives the unpadded window's outputs on its real steps.
        ``last_only=True`` returns only ``y[:, -1:]`` (B, 1, dim) and skips the top block's MLP elsewhere
        (recurrent acting feeds several tokens but reads one output).
        """
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{self.name or 'Stack'} expects x of shape (B, T, {self.dim}); got {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask must have shape (B, T) = {tuple(x.shape[:2])}; got {tuple(mask.shape)}")
        state = state if state is not None else [None] * len(self.blocks)
        new_state = []
        last = len(self.blocks) - 1
        for i, (block, s) in enumerate(zip(self.blocks, state, strict=True)):
            x, s = block(x, s, mask, last_only=last_only and i == last)
            new_state.append(s)
        return self.norm(x), new_state

    def step(self, x_t: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list]:
        """``x_t`` (B, dim) -> ``(y_t (B, dim), state)``; equals one more step of :meth:`forward`."""
        if x_t.dim() != 2 or x_t.shape[-1] != self.dim:
            raise ValueError(
                f"{self.name or 'Stack'}.step expects x_t of shape (B, {self.dim}); got {tuple(x_t.shape)}"
            )
        state = state if state is not None else [None] * len(self.blocks)
        new_state = []
        for block, s in zip(self.blocks, state, strict=True):
            x_t, s = block.step(x_t, s)
            new_state.append(s)
        return self.norm(x_t), new_state

    def reset_state(self, state: list[Any] | None, done: Tensor) -> list[Any] | None:
        """Return ``state`` with rows where ``done`` (B,) bool is True put back to the initial state."""
        if state is None:
            return None
        return [blk.reset_state(s, done) for blk, s in zip(self.blocks, state, strict=True)]


def build_backbone(
    name: str,
    dim: int,
    depth: int,
    dropout: float = 0.0,
    *,
    mlp_mult: int = 4,
    conv_kernel: int = 0,
    expansion: float = 1.0,
    n_heads: int = 1,
    backend: str = "auto",
    activation: str = "gelu",
    **cell_kw: Any,
) -> Stack:
    """Build a :class:`Stack` of ``depth`` blocks of width ``dim`` around the mixer called ``name``.

    Args:
        name: one of :data:`BACKBONES`.
        dim: model width.
        depth: number of residual blocks.
        dropout: dropout after the mixer and the MLP (and on attention weights); off in eval mode.
        mlp_mult: MLP hidden width = ``mlp_mult * dim``.
        conv_kernel: causal depthwise conv kernel before each mixer; 0 disables it.
        expansion: min-RNN state width = ``expansion * dim``.
        n_heads: attention heads (transformer only).
        backend: scan back-end for the min-RNNs, see :func:`minrnn.scan.scan`.
        activation: the MLP's activation, a key of :data:`ACTIVATIONS` ("gelu" or "relu").
        cell_kw: extra min-RNN arguments, e.g. ``learnable_h0=True`` or ``forget_bias=1.0`` (minLSTM).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")
    if dim < 1 or depth < 1:
        raise ValueError(f"dim and depth must be >= 1, got dim={dim}, depth={depth}")

    def mixer() -> nn.Module:
        if name in ("mingru", "minlstm"):
            return MinRNNMixer(dim, name, expansion=expansion, backend=backend, **cell_kw)
        if name in ("gru", "lstm"):
            return TorchRNNMixer(dim, name)
        return AttentionMixer(dim, n_heads=n_heads, dropout=dropout)

    blocks = [ResidualBlock(dim, mixer(), mlp_mult, dropout, conv_kernel, activation) for _ in range(depth)]
    return Stack(dim, blocks, name=name)
