"""nn.GRU / nn.LSTM mixers under arbitrary padding masks, against a row-by-row reference on the real steps only."""

from __future__ import annotations

import pytest
import torch

from minrnn.baselines import TorchRNNMixer

B, T, D = 6, 13, 8


def _reference(mixer: TorchRNNMixer, x: torch.Tensor, mask: torch.Tensor, state):
    """Each row alone: nn.GRU/LSTM over its real steps; zeros at padding; state after its last real step."""
    ys, hs, cs = [], [], []
    for b in range(x.shape[0]):
        s_b = None
        if state is not None:
            s_b = tuple(s[:, b : b + 1] for s in state) if isinstance(state, tuple) else state[:, b : b + 1]
        real = x[b : b + 1, mask[b]]
        y_b = torch.zeros(1, x.shape[1], x.shape[2], dtype=x.dtype)
        if real.shape[1]:
            y_r, s_new = mixer.rnn(real, s_b)
            y_b = y_b.index_put((torch.zeros(real.shape[1], dtype=torch.long), mask[b].nonzero()[:, 0]), y_r[0])
        else:
            zero = torch.zeros(1, 1, x.shape[2])
            s_new = s_b if s_b is not None else (zero if mixer.kind == "gru" else (zero, zero))
        ys.append(y_b)
        if mixer.kind == "gru":
            hs.append(s_new)
        else:
            hs.append(s_new[0])
            cs.append(s_new[1])
    y = torch.cat(ys, 0)
    return (y, torch.cat(hs, 1)) if mixer.kind == "gru" else (y, (torch.cat(hs, 1), torch.cat(cs, 1)))


def _masks() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    left = torch.ones(B, T, dtype=torch.bool)
    for b, n in enumerate([0, 3, 3, 7, T, 1]):  # several distinct lengths, one all-padding row
        left[b, :n] = False
    return {"left": left, "random": torch.rand(B, T, generator=g) > 0.4, "all_true": torch.ones(B, T, dtype=torch.bool)}


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("mask_name", ["left", "random", "all_true"])
@pytest.mark.parametrize("with_state", [False, True])
def test_masked_forward_and_grads_match_rowwise(kind: str, mask_name: str, with_state: bool) -> None:
    torch.manual_seed(0)
    mixer = TorchRNNMixer(D, kind)
    mask = _masks()[mask_name]
    x = torch.randn(B, T, D)
    state = None
    if with_state:
        state = torch.randn(1, B, D) if kind == "gru" else (torch.randn(1, B, D), torch.randn(1, B, D))
    w = torch.randn(B, T, D)  # a random cotangent

    def run(fn):
        xg = x.clone().requires_grad_()
        mixer.zero_grad()
        y, s = fn(mixer, xg, mask, state)
        flat = s if isinstance(s, tuple) else (s,)
        loss = (y * w).sum() + sum((f * (i + 2.0)).sum() for i, f in enumerate(flat))
        loss.backward()
        return y.detach(), [f.detach() for f in flat], xg.grad, [p.grad.clone() for p in mixer.parameters()]

    y0, s0, gx0, gp0 = run(lambda m, xx, mk, st: m(xx, st, mk))
    y1, s1, gx1, gp1 = run(_reference)
    assert (y0 - y1).abs().max() <= 1e-5
    for a, b in zip(s0, s1, strict=True):
        assert (a - b).abs().max() <= 1e-5
    assert (gx0 - gx1).abs().max() <= 1e-4
    for a, b in zip(gp0, gp1, strict=True):
        assert (a - b).abs().max() <= 1e-4
