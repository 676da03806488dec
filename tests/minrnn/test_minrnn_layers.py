"""MinGRU / MinLSTM against float64 loops of the paper's equations, on every CPU back-end."""

from __future__ import annotations

import pytest
import torch
from minrnn_reference import ref_mingru, ref_minlstm

from minrnn import MinGRU, MinLSTM

BACKENDS = ["sequential", "logspace", "cpu"]
CELLS = [(MinGRU, ref_mingru), (MinLSTM, ref_minlstm)]


def _layer(cls, dim_in=5, hid=6, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(dim_in, hid, **kw).to(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_forward_matches_paper_equations(cls, ref, backend: str) -> None:
    layer = _layer(cls)
    x = torch.randn(3, 40, 5)
    h0 = torch.rand(3, 6) + 0.1
    h, h_last = layer(x, h0=h0, backend=backend)
    want = ref(x, layer.proj.weight, layer.proj.bias, h0)
    assert (h.double() - want).abs().max() <= 1e-5
    assert torch.equal(h_last, h[:, -1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_float64_and_gradients(cls, ref, backend: str) -> None:
    layer = _layer(cls, dtype=torch.float64)
    x = torch.randn(2, 30, 5, dtype=torch.float64, requires_grad=True)
    h0 = (torch.rand(2, 6, dtype=torch.float64) + 0.1).requires_grad_()
    h, _ = layer(x, h0=h0, backend=backend)
    want = ref(x, layer.proj.weight, layer.proj.bias, h0)
    assert (h - want).abs().max() <= 1e-10
    dy = torch.randn_like(h)
    inputs = (x, h0, layer.proj.weight, layer.proj.bias)
    for g, w in zip(torch.autograd.grad(h, inputs, dy), torch.autograd.grad(want, inputs, dy), strict=True):
        assert (g - w).abs().max() <= 1e-9


@pytest.mark.parametrize("learnable_h0", [False, True])
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_step_equals_forward(cls, ref, learnable_h0: bool) -> None:
    layer = _layer(cls, learnable_h0=learnable_h0)
    if learnable_h0:
        torch.nn.init.normal_(layer.h0_raw)
    x = torch.randn(4, 25, 5)
    h, _ = layer(x)
    s = None
    for t in range(25):
        s = layer.step(x[:, t], s)
        assert (s - h[:, t]).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_continuation(cls, ref, backend: str) -> None:
    layer = _layer(cls)
    x = torch.randn(2, 31, 5)
    h, _ = layer(x, backend=backend)
    h1, s = layer(x[:, :12], backend=backend)
    h2, _ = layer(x[:, 12:], h0=s, backend=backend)
    assert (torch.cat([h1, h2], 1) - h).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_left_padding_and_all_padding_rows(cls, ref, backend: str) -> None:
    layer = _layer(cls)
    x = torch.randn(3, 10, 5)
    h, h_last = layer(x, backend=backend)
    pad = torch.randn(3, 4, 5) * 100  # garbage in the padding must not leak
    mask = torch.ones(3, 14, dtype=torch.bool)
    mask[:, :4] = False
    mask[2] = False  # an all-padding row
    hp, hp_last = layer(torch.cat([pad, x], 1), mask=mask, backend=backend)
    assert (hp[:2, 4:] - h[:2]).abs().max() <= 1e-5
    assert (hp_last[:2] - h_last[:2]).abs().max() <= 1e-5
    assert torch.equal(hp[2], torch.zeros_like(hp[2])) and torch.isfinite(hp).all()
    h0 = torch.rand(3, 6) + 0.1
    _, kept = layer(torch.cat([pad, x], 1), h0=h0, mask=mask, backend=backend)
    assert (kept[2] - h0[2]).abs().max() <= 1e-6  # padded steps keep a given state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_extreme_gate_logits_stay_finite(cls, ref, backend: str) -> None:
    layer = _layer(cls, dim_in=2)
    with torch.no_grad():
        layer.proj.weight.zero_()
        layer.proj.bias.copy_(torch.tensor([60.0, -60.0]).repeat(layer.proj.bias.numel() // 2))
    x = torch.zeros(2, 50, 2, requires_grad=True)
    h, _ = layer(x, backend=backend)
    (gx,) = torch.autograd.grad(h.sum(), x)
    assert torch.isfinite(h).all() and torch.isfinite(gx).all()
    want = ref(x.detach(), layer.proj.weight, layer.proj.bias)
    assert (h.double() - want).abs().max() <= 1e-4


@pytest.mark.parametrize(("cls", "ref"), CELLS)
def test_bf16_autocast_finite_and_close(cls, ref) -> None:
    layer = _layer(cls, dim_in=8, hid=16)
    x = torch.randn(2, 64, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, _ = layer(x)
    assert h.dtype == torch.float32 and torch.isfinite(h).all()
    assert (h.double() - ref(x, layer.proj.weight, layer.proj.bias)).abs().max() < 0.1


def test_forget_bias_and_errors() -> None:
    layer = MinLSTM(4, 3, forget_bias=2.0)
    assert torch.all(layer.proj.bias[:3] >= 2.0 - 1.0)
    with pytest.raises(ValueError, match=r"expects x of shape \(B, T, 4\); got \(2, 4\)"):
        layer(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(2, 5\)"):
        layer(torch.zeros(2, 5, 4), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"step expects x_t of shape \(B, 4\)"):
        layer.step(torch.zeros(2, 5, 4))
