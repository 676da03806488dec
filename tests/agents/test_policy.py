"""Acting parity: recurrent acting == one forward over the whole trajectory; window acting == forward over the
last K steps (DT); per-slot resets; masked loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.decision import DecisionModel, masked_mse
from agents.policy import DecisionPolicy

OBS, ACT = 4, 2
RECURRENT = ("mingru", "minlstm", "gru", "lstm")
ATOL = 1e-5


def tiny_model(backbone: str, layout: str, seed: int = 0) -> DecisionModel:
    """layout "stacked-ln" is the stacked layout with rtg_embed="layernorm", "stacked-bal" with "balanced"."""
    torch.manual_seed(seed)
    mean, std = np.linspace(-1, 1, OBS), np.linspace(0.5, 2, OBS)
    layout, _, embed = layout.partition("-")
    model = DecisionModel(OBS, ACT, backbone=backbone, layout=layout, dim=16, depth=2, dropout=0.0,
                          max_ep_len=64, rtg_scale=10.0, state_mean=mean, state_std=std,
                          rtg_embed={"": "joint", "ln": "layernorm", "bal": "balanced"}[embed])  # fmt: skip
    return model.eval()


def roll(policy: DecisionPolicy, obs: np.ndarray, rewards: np.ndarray, resets: np.ndarray | None = None) -> np.ndarray:
    """Drive ``policy`` over obs (n, T, obs), rewards (n, T); returns the actions (n, T, act)."""
    n, T, _ = obs.shape
    policy.reset(n)
    out = []
    for t in range(T):
        done = np.full(n, t == 0) if resets is None else resets[:, t]
        reward = np.zeros(n) if t == 0 else rewards[:, t - 1]
        out.append(policy.act(obs[:, t], np.where(done, 0.0, reward), done))
    return np.stack(out, axis=1)


def trajectory(n: int, T: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, OBS)).astype(np.float32), rng.random((n, T)).astype(np.float32)


def rtg_of(target: float, rewards: np.ndarray) -> np.ndarray:
    """RTG_t = target - sum of rewards before t."""
    before = np.concatenate([np.zeros((len(rewards), 1)), np.cumsum(rewards, axis=1)[:, :-1]], axis=1)
    return (target - before).astype(np.float32)


@pytest.mark.parametrize("layout", ["interleaved", "stacked", "stacked-ln", "stacked-bal"])
@pytest.mark.parametrize("backbone", RECURRENT)
def test_recurrent_acting_matches_full_forward(backbone: str, layout: str) -> None:
    model = tiny_model(backbone, layout)
    obs, rewards = trajectory(n=3, T=12)
    acts = roll(DecisionPolicy(model, 50.0, "recurrent", context_len=4), obs, rewards)
    T = obs.shape[1]
    with torch.no_grad():
        pred, _ = model(torch.from_numpy(obs), torch.from_numpy(acts).float(), torch.from_numpy(rtg_of(50.0, rewards)),
                        torch.arange(T).expand(3, T))  # fmt: skip
    np.testing.assert_allclose(acts, pred.numpy(), atol=ATOL)


@pytest.mark.parametrize("layout", ["interleaved", "stacked", "stacked-ln", "stacked-bal"])
@pytest.mark.parametrize("backbone", [*RECURRENT, "transformer"])
def test_window_acting_matches_forward_over_last_k(backbone: str, layout: str) -> None:
    K, T, n = 4, 9, 2
    model = tiny_model(backbone, layout)
    obs, rewards = trajectory(n=n, T=T)
    acts = roll(DecisionPolicy(model, 50.0, "window", context_len=K), obs, rewards)
    rtg = rtg_of(50.0, rewards)
    for t in range(T):
        lo = max(0, t + 1 - K)
        L = t + 1 - lo  # real steps in the window, left-padded to K
        pad = K - L
        s = np.zeros((n, K, OBS), np.float32)
        a = np.zeros((n, K, ACT), np.float32)
        r = np.zeros((n, K), np.float32)
        ts = np.zeros((n, K), np.int64)
        s[:, pad:], a[:, pad:], r[:, pad:], ts[:, pad:] = (
            obs[:, lo : t + 1],
            acts[:, lo : t + 1],
            rtg[:, lo : t + 1],
            np.arange(lo, t + 1),
        )
        a[:, -1] = 0.0
        mask = np.arange(K)[None].repeat(n, 0) >= pad
        with torch.no_grad():
            pred, _ = model(*(torch.from_numpy(x) for x in (s, a, r, ts, mask)))
        np.testing.assert_allclose(acts[:, t], pred[:, -1].numpy(), atol=ATOL, err_msg=f"step {t}")


@pytest.mark.parametrize("mode", ["window", "recurrent"])
def test_slot_reset_equals_fresh_episode(mode: str) -> None:
    """A slot that starts a new episode mid-run acts exactly as a fresh policy would on that episode."""
    model = tiny_model("mingru", "interleaved")
    obs, rewards = trajectory(n=2, T=10)
    resets = np.zeros((2, 10), bool)
    resets[:, 0] = True
    resets[1, 6] = True  # slot 1 starts a new episode at t=6
    acts = roll(DecisionPolicy(model, 50.0, mode, context_len=4), obs, rewards, resets)
    fresh = roll(DecisionPolicy(model, 50.0, mode, context_len=4), obs[1:, 6:], rewards[1:, 6:])
    np.testing.assert_allclose(acts[1, 6:], fresh[0], atol=ATOL)
    alone = roll(DecisionPolicy(model, 50.0, mode, context_len=4), obs[:1], rewards[:1])
    np.testing.assert_allclose(acts[0], alone[0], atol=ATOL)  # the other slot is untouched


def test_left_padding_does_not_change_real_steps() -> None:
    model = tiny_model("mingru", "stacked")
    obs, rewards = trajectory(n=1, T=3)
    args = [torch.from_numpy(obs), torch.zeros(1, 3, ACT), torch.from_numpy(rewards), torch.arange(3)[None]]
    with torch.no_grad():
        ref, _ = model(*args)
        padded = [torch.cat([torch.zeros_like(x[:, :2]), x], dim=1) for x in args]
        out, _ = model(*padded, mask=torch.tensor([[False, False, True, True, True]]))
    torch.testing.assert_close(out[:, 2:], ref, atol=ATOL, rtol=0)


def test_masked_mse_ignores_padding() -> None:
    pred = torch.tensor([[[1.0], [float("nan")], [3.0]]])
    target = torch.tensor([[[0.0], [0.0], [1.0]]])
    mask = torch.tensor([[True, False, True]])
    assert masked_mse(pred, target, mask).item() == pytest.approx((1 + 4) / 2)


def test_masked_mse_sum_over_action_dims() -> None:
    """reduction='sum' is d3rlpy's: squared error summed over action dims, averaged over the real steps."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True], [False, True, True, True]])
    steps = [(b, t) for b in range(3) for t in range(4) if mask[b, t]]
    per_step = [sum((pred[b, t, d].item() - target[b, t, d].item()) ** 2 for d in range(2)) for b, t in steps]
    assert masked_mse(pred, target, mask, "sum").item() == pytest.approx(sum(per_step) / len(steps))
    assert masked_mse(pred, target, mask, "mean").item() == pytest.approx(sum(per_step) / len(steps) / 2)


def test_bad_shapes_and_modes() -> None:
    model = tiny_model("gru", "stacked")
    with pytest.raises(ValueError, match=r"expected states \(B, T, 4\)"):
        model(torch.zeros(1, 3, 5), torch.zeros(1, 3, ACT), torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="acting mode 'beam'"):
        DecisionPolicy(model, 1.0, "beam")


@pytest.mark.parametrize("backbone", RECURRENT)
def test_recurrent_slot_reset_every_backbone(backbone: str) -> None:
    """Interleaved recurrent acting feeds a_{t-1} with the next step's tokens; a slot that restarts must not."""
    model = tiny_model(backbone, "interleaved")
    obs, rewards = trajectory(n=3, T=9)
    resets = np.zeros((3, 9), bool)
    resets[:, 0] = True
    resets[1, 4] = True
    resets[2, 6] = True
    acts = roll(DecisionPolicy(model, 50.0, "recurrent", context_len=4), obs, rewards, resets)
    for slot, start in ((1, 4), (2, 6)):
        fresh = roll(DecisionPolicy(model, 50.0, "recurrent", context_len=4), obs[slot:slot + 1, start:],
                     rewards[slot:slot + 1, start:])  # fmt: skip
        np.testing.assert_allclose(acts[slot, start:], fresh[0], atol=ATOL)
    alone = roll(DecisionPolicy(model, 50.0, "recurrent", context_len=4), obs[:1], rewards[:1])
    np.testing.assert_allclose(acts[0], alone[0], atol=ATOL)


@pytest.mark.parametrize("layout", ["interleaved", "stacked", "stacked-ln", "stacked-bal"])
@pytest.mark.parametrize("backbone", ["mingru", "minlstm"])
def test_graphed_acting_matches_eager(backbone: str, layout: str) -> None:
    """cuda_graphs="auto" acts through a GraphedActor (its eager body on CPU) with the same actions as the plain
    recurrent policy, over episodes restarting in some slots, and again after a reset that reuses the actor."""
    model = tiny_model(backbone, layout)
    obs, rewards = trajectory(n=3, T=12)
    resets = np.zeros((3, 12), bool)
    resets[:, 0] = True
    resets[0, 5] = resets[2, 9] = True
    eager = DecisionPolicy(model, 50.0, "recurrent", context_len=4)
    graphed = DecisionPolicy(model, 50.0, "recurrent", context_len=4, cuda_graphs="auto")
    want = roll(eager, obs, rewards, resets)
    got = roll(graphed, obs, rewards, resets)
    assert graphed.actor is not None and eager.actor is None
    np.testing.assert_allclose(got, want, atol=ATOL)
    actor = graphed.actor
    np.testing.assert_allclose(roll(graphed, obs, rewards), roll(eager, obs, rewards), atol=ATOL)
    assert graphed.actor is actor  # same number of slots: the actor (and a captured graph) is kept


def test_graphed_acting_falls_back_and_checks_mode() -> None:
    for backbone, mode in (("transformer", "on"), ("gru", "auto")):  # growing KV cache; host-syncing mixer
        pol = DecisionPolicy(tiny_model(backbone, "stacked"), 50.0, "recurrent", context_len=4, cuda_graphs=mode)
        pol.reset(2)
        assert pol.actor is None
    with pytest.raises(ValueError, match=r"cuda_graphs='sometimes' is not valid; use one of \['auto', 'on', 'off'\]"):
        DecisionPolicy(tiny_model("mingru", "stacked"), 50.0, "recurrent", cuda_graphs="sometimes")
    pol = DecisionPolicy(tiny_model("mingru", "stacked"), 50.0, "recurrent", context_len=4, cuda_graphs="on")
    with pytest.raises(ValueError, match=r"cuda_graphs='on' needs a model on CUDA, got device cpu"):
        pol.reset(2)


def test_backbone_init_gpt2_draws_the_backbone_from_n002_and_auto_picks_it_for_attention() -> None:
    from agents.config import TrainConfig
    from agents.trainer import build_model

    torch.manual_seed(0)
    gpt2 = build_model(TrainConfig(backbone="transformer"), obs_dim=11, act_dim=3)
    linears = [m for m in gpt2.backbone.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert abs(weights.std().item() - 0.02) < 0.001 and all(not m.bias.any() for m in linears)
    assert abs(gpt2.embed_timestep.weight.std().item() - 0.02) < 0.001  # every backbone: N(0, 0.02)
    assert gpt2.embed_state.bias.abs().sum() > 0  # embeddings keep PyTorch's init, as d3rlpy's do
    rnn = build_model(TrainConfig(backbone="mingru"), obs_dim=11, act_dim=3)
    assert any(m.bias.abs().sum() > 0 for m in rnn.backbone.modules() if isinstance(m, torch.nn.Linear))
    assert TrainConfig(backbone="mingru", backbone_init="gpt2").resolved_backbone_init() == "gpt2"


def test_forget_bias_shifts_only_the_minlstm_forget_gate_bias() -> None:
    """forget_bias adds to the first H entries of each minLSTM projection bias (k_f, then k_i, k_h), nothing else."""
    from agents.config import TrainConfig
    from agents.trainer import build_model

    torch.manual_seed(0)
    base = build_model(TrainConfig(backbone="minlstm", dim=16), obs_dim=11, act_dim=3).state_dict()
    torch.manual_seed(0)
    biased = build_model(TrainConfig(backbone="minlstm", dim=16, forget_bias=1.5), obs_dim=11, act_dim=3).state_dict()
    shifted = [k for k in base if not torch.equal(base[k], biased[k])]
    assert shifted == [f"backbone.blocks.{i}.mixer.rnn.proj.bias" for i in range(3)]
    for k in shifted:
        diff = biased[k] - base[k]
        torch.testing.assert_close(diff[:16], torch.full((16,), 1.5))
        assert not diff[16:].any()


def test_layernormed_rtg_keeps_the_state_in_the_token_at_a_target_far_above_the_data() -> None:
    """Stacked tokens (before the timestep) of two different states at one return-to-go. With the joint Linear the
    R_t column grows with R_t and, after the token LayerNorm, the two tokens become the same vector; with
    rtg_embed="layernorm" R_t's part is bounded, so the state still moves the token at any R_t."""
    import torch.nn.functional as F

    s = torch.randn(2, OBS, generator=torch.Generator().manual_seed(3))
    prev = torch.zeros(2, ACT)
    far = (("stacked", lambda c: c > 0.999), ("stacked-ln", lambda c: c < 0.99), ("stacked-bal", lambda c: c < 0.99))
    for layout, far_cos in far:
        model = tiny_model("mingru", layout)
        with torch.no_grad():
            cos = []
            for r in (1.0, 1e6):
                tok = F.layer_norm(model._stacked(torch.full((2, 1), r), s, prev), (16,))
                cos.append(F.cosine_similarity(tok[0], tok[1], dim=0).item())
        assert cos[0] < 0.99, (layout, cos)  # at an ordinary R_t the states differ
        assert far_cos(cos[1]), (layout, cos)


def test_balanced_rtg_embed_gives_both_parts_the_norm_of_a_layernorm_at_any_target() -> None:
    """rtg_embed="balanced": R_t's part and the (s_t, a_{t-1}) part each leave a LayerNorm, whose output (unit
    affine at init) has norm sqrt(D * var / (var + eps)) ~ sqrt(D), whatever R_t or the state."""
    model = tiny_model("mingru", "stacked-bal")
    s = 10 * torch.randn(3, OBS, generator=torch.Generator().manual_seed(4))
    prev = torch.zeros(3, ACT)
    with torch.no_grad():
        for r in (0.01, 1.0, 1e6):
            r_part = model.embed_rtg(torch.full((3, 1), r))
            s_part = model.embed_step(torch.cat((s, prev), dim=-1))
            torch.testing.assert_close(r_part.norm(dim=-1), torch.full((3,), 4.0), atol=1e-3, rtol=0)  # sqrt(16)
            torch.testing.assert_close(s_part.norm(dim=-1), torch.full((3,), 4.0), atol=1e-3, rtol=0)
            torch.testing.assert_close(model._stacked(torch.full((3, 1), r), s, prev), r_part + s_part)


def test_activation_auto_gives_attention_dts_relu_and_old_checkpoints_stay_gelu() -> None:
    from agents.config import TrainConfig, config_from_dict
    from agents.trainer import build_model

    def acts(cfg: TrainConfig) -> set[type]:
        model = build_model(cfg, obs_dim=11, act_dim=3)
        return {type(m) for m in model.backbone.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.GELU))}

    assert acts(TrainConfig(backbone="transformer")) == {torch.nn.ReLU}  # DT's GPT-2 configuration
    assert acts(TrainConfig(backbone="mingru")) == {torch.nn.GELU}
    assert acts(TrainConfig(backbone="mingru", activation="relu")) == {torch.nn.ReLU}
    x = torch.tensor([-1.0, 0.5])  # the block really applies it: relu(-1) = 0, gelu(-1) = -0.1587
    relu_mlp = build_model(TrainConfig(backbone="transformer"), 11, 3).backbone.blocks[0].mlp[1]
    assert relu_mlp(x).tolist() == [0.0, 0.5]
    saved = TrainConfig(backbone="transformer").to_dict()
    del saved["activation"]  # a checkpoint written before the key existed was trained with GELU
    assert config_from_dict(saved).resolved_activation() == "gelu"
    with pytest.raises(ValueError, match=r"activation='swish' is not valid; use one of \['auto', 'gelu', 'relu'\]"):
        TrainConfig(activation="swish")
