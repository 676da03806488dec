"""agents/graphs.py: the graphed (CUDA) or fallback (CPU) update and acting step equal their eager references."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from agents.config import TrainConfig
from agents.decision import DecisionModel
from agents.graphs import UPDATE_BACKBONES, GraphedActor, GraphedUpdate, use_graphs
from agents.trainer import compute_loss, make_optimizer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OBS, ACT, B, K = 5, 3, 6, 7


def _model(backbone: str, layout: str, device: str, **kw) -> DecisionModel:
    torch.manual_seed(0)
    m = DecisionModel(OBS, ACT, backbone=backbone, layout=layout, dim=16, depth=2, dropout=0.0, **kw)
    return m.to(device)


def _batch(gen: torch.Generator, device: str) -> dict[str, torch.Tensor]:
    mask = torch.ones(B, K, dtype=torch.bool)
    mask[0, :3] = False  # left padding, as the sampler produces
    b = {"states": torch.randn(B, K, OBS, generator=gen), "actions": torch.rand(B, K, ACT, generator=gen) * 2 - 1,
         "rtg": torch.rand(B, K, generator=gen) * 100, "timesteps": torch.arange(K).expand(B, K).clone(),
         "mask": mask}  # fmt: skip
    return {k: v.to(device) for k, v in b.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["stacked", "interleaved"])
def test_update_equals_eager(device: str, layout: str, eager_reference: Callable[..., list[float]]) -> None:
    model = _model("mingru", layout, device)
    ref = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    batches = [_batch(gen, device) for _ in range(5)]
    cfg = TrainConfig(lr=1e-3, weight_decay=1e-4, warmup_steps=3, grad_clip=0.25)
    graphed = device == "cuda"
    opt, sched = make_optimizer(model.parameters(), cfg, graphs=graphed)
    upd = GraphedUpdate(model, opt, sched, cfg.grad_clip, lambda m, b: compute_loss(m, b, cfg), mode="auto")
    assert upd.graphed == graphed
    got = [upd.step(b).loss.item() for b in batches]
    want = eager_reference(ref, batches, 1e-3, 1e-4, 3, 0.25, foreach=True)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(sched.get_last_lr()[0])


def test_update_errors() -> None:
    with pytest.raises(ValueError, match=r"cuda_graphs='maybe' is not valid; choose one of \('auto', 'on', 'off'\)"):
        use_graphs("maybe", torch.device("cpu"))
    with pytest.raises(ValueError, match="cuda_graphs='on' needs a model on CUDA, got device cpu"):
        GraphedUpdate(
            _model("mingru", "stacked", "cpu"), torch.optim.AdamW(torch.nn.Linear(1, 1).parameters()), None, 0.25,
            lambda m, b: compute_loss(m, b, TrainConfig()), mode="on",
        )  # fmt: skip


def test_host_syncing_backbones_stay_eager() -> None:
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    assert use_graphs("auto", cuda, "gru", UPDATE_BACKBONES) is False
    assert use_graphs("auto", cuda, "mingru", UPDATE_BACKBONES) is True
    with pytest.raises(ValueError, match="cuda_graphs='on' cannot capture backbone 'lstm'"):
        use_graphs("on", cuda, "lstm", UPDATE_BACKBONES)


def _act_inputs(gen: torch.Generator, n: int, t: int, device: str) -> tuple[torch.Tensor, ...]:
    obs, rtg = torch.randn(n, OBS, generator=gen), torch.rand(n, generator=gen) * 100
    prev = torch.rand(n, ACT, generator=gen) * 2 - 1
    ts = torch.full((n,), t, dtype=torch.long)
    return tuple(x.to(device) for x in (obs, rtg, ts, prev, (ts - 1).clamp_min(0)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backbone,layout,kw", [
    ("mingru", "interleaved", {}), ("mingru", "stacked", {}), ("minlstm", "interleaved", {"conv_kernel": 3}),
    ("gru", "interleaved", {}), ("mingru", "interleaved", {"learnable_h0": True}),
])  # fmt: skip
def test_actor_equals_step_deferred(device: str, backbone: str, layout: str, kw: dict) -> None:
    """Six steps for n=4 environments; environment 1 ends after step 2 and restarts (no a_{t-1} at its new start)."""
    model = _model(backbone, layout, device, **kw).eval()
    if kw.get("learnable_h0"):
        for name, p in model.named_parameters():
            if "h0_raw" in name:
                torch.nn.init.normal_(p)
    n, gen = 4, torch.Generator().manual_seed(2)
    actor = GraphedActor(model, n, mode="auto")
    state, has_prev = None, torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(6):
        obs, rtg, ts, prev, prev_ts = _act_inputs(gen, n, t, device)
        with torch.no_grad():
            want, state = model.step_deferred(obs, rtg, ts, state, prev, prev_ts, has_prev)
        got = actor.act(obs, rtg, ts, prev, prev_ts, has_prev).clone()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        has_prev = torch.ones(n, dtype=torch.bool, device=device)
        if t == 2:
            done = torch.tensor([False, True, False, False], device=device)
            state = model.backbone.reset_state(state, done)
            actor.reset(done)
            has_prev = ~done


def test_deferred_step_without_branches_all_new() -> None:
    """has_prev all False: the masked 3-token call equals step_deferred's 2-token call."""
    model = _model("mingru", "interleaved", "cpu", conv_kernel=2).eval()
    gen = torch.Generator().manual_seed(3)
    obs, rtg, ts, prev, prev_ts = _act_inputs(gen, 3, 0, "cpu")
    no = torch.zeros(3, dtype=torch.bool)
    with torch.no_grad():
        want, s_want = model.step_deferred(obs, rtg, ts, None, prev, prev_ts, no)
        got, s_got = model.step_deferred(obs, rtg, ts, None, prev, prev_ts, no, capturable=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(s_got, s_want)


def test_actor_refuses_growing_state() -> None:
    model = _model("transformer", "interleaved", "cpu").eval()
    with pytest.raises(ValueError, match="'transformer' has a state that grows with time"):
        GraphedActor(model, 2, mode="off")
