"""Every backbone keeps the stack contract: step == forward, continuation, padding invariance, eval dropout."""

from __future__ import annotations

import pytest
import torch

from minrnn import BACKBONES, build_backbone

DIM, T = 16, 11


def _stack(name: str, **kw):
    torch.manual_seed(0)
    return build_backbone(name, DIM, 2, dropout=0.2, **kw).eval()


@pytest.fixture(params=[(n, c) for n in BACKBONES for c in (0, 3)], ids=lambda p: f"{p[0]}-conv{p[1]}")
def stack(request):
    name, conv = request.param
    return _stack(name, conv_kernel=conv)


def _x(bsz: int = 3, steps: int = T, seed: int = 1) -> torch.Tensor:
    return torch.randn(bsz, steps, DIM, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_step_equals_forward(stack) -> None:
    x = _x()
    y, _ = stack(x)
    state = None
    for t in range(T):
        y_t, state = stack.step(x[:, t], state)
        assert (y_t - y[:, t]).abs().max() <= 1e-5


@torch.no_grad()
def test_continuation(stack) -> None:
    x = _x()
    y, _ = stack(x)
    y1, s = stack(x[:, :4])
    y2, _ = stack(x[:, 4:], s)
    assert (torch.cat([y1, y2], 1) - y).abs().max() <= 1e-5


@torch.no_grad()
def test_left_padding_matches_unpadded(stack) -> None:
    x = _x()
    y, s = stack(x)
    mask = torch.ones(3, T + 5, dtype=torch.bool)
    mask[:, :5] = False
    mask[2] = False  # all-padding row
    yp, sp = stack(torch.cat([_x(3, 5, seed=9) * 50, x], 1), mask=mask)
    assert torch.isfinite(yp).all()
    assert (yp[:2, 5:] - y[:2]).abs().max() <= 1e-5
    # the states of real rows continue like the unpadded ones; the all-padding row keeps the initial state
    nxt = _x(3, 4, seed=2)
    y_a, _ = stack(nxt, s)
    y_b, _ = stack(nxt, sp)
    y_c, _ = stack(nxt)
    assert (y_a[:2] - y_b[:2]).abs().max() <= 1e-5
    assert (y_b[2] - y_c[2]).abs().max() <= 1e-5


@torch.no_grad()
def test_reset_state(stack) -> None:
    x = _x()
    _, s = stack(x)
    s = stack.reset_state(s, torch.tensor([True, False, False]))
    y_reset, _ = stack(x[:, :3], s)
    y_fresh, _ = stack(x[:, :3])
    assert (y_reset[0] - y_fresh[0]).abs().max() <= 1e-5
    assert (y_reset[1] - y_fresh[1]).abs().max() > 1e-4


def test_dropout_only_in_training(stack) -> None:
    x = _x()
    with torch.no_grad():
        assert torch.equal(stack(x)[0], stack(x)[0])
        stack.train()
        assert not torch.equal(stack(x)[0], stack(x)[0])


def test_backward_runs(stack) -> None:
    stack.train()
    x = _x().requires_grad_()
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[0, :4] = False
    y, _ = stack(x, mask=mask)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in stack.parameters())


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'rwkv'; choose one of"):
        build_backbone("rwkv", DIM, 2)
    stack = _stack("mingru")
    with pytest.raises(ValueError, match=r"expects x of shape \(B, T, 16\); got \(3, 11, 8\)"):
        stack(torch.zeros(3, T, 8))
    with pytest.raises(ValueError, match=r"step expects x_t of shape \(B, 16\)"):
        stack.step(torch.zeros(3, T, DIM))


@torch.no_grad()
def test_last_only_matches_full_forward(stack) -> None:
    x = _x()
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[1, :4] = False
    y, s = stack(x, mask=mask)
    y_last, s_last = stack(x, mask=mask, last_only=True)
    assert y_last.shape == (3, 1, DIM)
    assert (y_last[:, 0] - y[:, -1]).abs().max() <= 1e-5
    nxt = _x(3, 4, seed=5)
    assert (stack(nxt, s)[0] - stack(nxt, s_last)[0]).abs().max() <= 1e-5
