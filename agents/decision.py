"""The Decision model: DT's token layout over a swappable sequence backbone (transformer, minGRU, minLSTM, GRU, LSTM).

Decision Transformer (Chen et al. 2021; kzl/decision-transformer gym/decision_transformer/models/
decision_transformer.py): returns-to-go, states and actions each get a Linear embedding, a learned timestep
embedding is added to every token, the token sequence goes through a LayerNorm and the backbone, and the action
a_t is predicted from the state token s_t through Linear + Tanh. The loss is a masked MSE on actions.

Two layouts:

- ``interleaved``: three tokens per step, (R_1, s_1, a_1, R_2, s_2, a_2, ...), as DT. a_t is read at s_t's
  output, so a causal backbone never sees a_t before predicting it.
- ``stacked``: one token per step embedding (R_t, s_t, a_{t-1}) jointly; a_t is read at that token's output.
  Sequences are 3x shorter. a_{t-1} of a window's first step is ``prev_action`` (zeros by default, also at t=0).
  With ``rtg_embed="layernorm"`` R_t gets its own Linear and LayerNorm, added to the Linear of (s_t, a_{t-1}):
  its share of the token is then bounded, as it is in DT's separate R token, so a target far above the data's
  returns cannot drown the state in the token's LayerNorm (with the joint Linear it grows with R_t). The
  LayerNormed R part has norm ~sqrt(D), several times the state part's at init, so R_t then takes most of the
  token at every target; ``rtg_embed="balanced"`` LayerNorms the (s_t, a_{t-1}) part too, giving both parts the
  same norm.

The model takes *raw* states and returns-to-go: the dataset's state mean/std and the RTG scale are buffers
stored with the weights, so a checkpoint carries its own normalisation.

>>> import torch
>>> m = DecisionModel(obs_dim=3, act_dim=2, backbone="gru", layout="stacked", dim=8, depth=1, dropout=0.0)
>>> B, T = 2, 4
>>> pred, _ = m(torch.randn(B, T, 3), torch.zeros(B, T, 2), torch.ones(B, T), torch.arange(T).expand(B, T))
>>> tuple(pred.shape)
(2, 4, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from agents.config import LAYOUTS, RTG_EMBEDS, TrainConfig
from minrnn import build_backbone

__all__ = ["DecisionModel", "build_model", "masked_mse"]


class DecisionModel(nn.Module):
    """Decision agent: (RTG, state, action) tokens -> backbone -> tanh action head.

    Args:
        obs_dim, act_dim: per-step state and action sizes.
        backbone: a name from ``minrnn.BACKBONES``.
        layout: "interleaved" (3 tokens per step) or "stacked" (1 token per step).
        dim, depth, dropout: backbone width, layers and dropout (DT: 128, 3, 0.1).
        max_ep_len: rows of the timestep embedding (DT: 1000); larger timesteps are clamped.
        rtg_scale: returns-to-go are divided by it (DT: 1000).
        state_mean, state_std: (obs,) normalisation statistics of the dataset (default 0 and 1).
        backbone_init: "default" (PyTorch's per-layer defaults) or "gpt2": every Linear of the backbone from
            N(0, 0.02) with zero bias, as d3rlpy's DT does (models/torch/transformers.py, _init_weights) and as
            GPT-2 does (Hugging Face's GPT2Model, inside kzl/decision-transformer, also shrinks its residual
            projections to 0.02 / sqrt(2 * layers); we don't).
        rtg_embed: stacked layout only: "joint" (one Linear over (R_t, s_t, a_{t-1})), "layernorm" (R_t through
            its own Linear and LayerNorm, added to a Linear over (s_t, a_{t-1})) or "balanced" (as "layernorm",
            with a LayerNorm after the (s_t, a_{t-1}) Linear too).
        **backbone_kwargs: forwarded to ``minrnn.build_backbone`` (e.g. n_heads, backend).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        backbone: str = "mingru",
        layout: str = "interleaved",
        dim: int = 128,
        depth: int = 3,
        dropout: float = 0.1,
        max_ep_len: int = 1000,
        rtg_scale: float = 1000.0,
        state_mean: np.ndarray | Tensor | None = None,
        state_std: np.ndarray | Tensor | None = None,
        backbone_init: str = "default",
        rtg_embed: str = "joint",
        **backbone_kwargs: Any,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not valid; use 'interleaved' or 'stacked'")
        if rtg_embed not in RTG_EMBEDS or (rtg_embed != "joint" and layout != "stacked"):
            raise ValueError(f"rtg_embed={rtg_embed!r} is not valid for layout {layout!r}; use one of {RTG_EMBEDS} "
                             "with layout 'stacked', 'joint' with 'interleaved'")  # fmt: skip
        self.obs_dim, self.act_dim, self.dim = obs_dim, act_dim, dim
        self.backbone_name, self.layout, self.max_ep_len = backbone, layout, max_ep_len
        self.interleaved = layout == "interleaved"
        self.tokens_per_step = 3 if self.interleaved else 1  # (R_t, s_t, a_t) as DT, or one stacked token
        self.rtg_scale = float(rtg_scale)
        mean = torch.zeros(obs_dim) if state_mean is None else torch.as_tensor(state_mean, dtype=torch.float32)
        std = torch.ones(obs_dim) if state_std is None else torch.as_tensor(state_std, dtype=torch.float32)
        self.register_buffer("state_mean", mean.reshape(obs_dim).clone())
        self.register_buffer("state_std", std.reshape(obs_dim).clone())

        self.embed_timestep = nn.Embedding(max_ep_len, dim)
        # N(0, 0.02) as in GPT-2 and d3rlpy (models/torch/transformers.py, _init_weights), not nn.Embedding's
        # N(0, 1). A unit-variance timestep vector added to every token drowns the state, return and action
        # embeddings (~0.6 std at nn.Linear's default init), and each of its 1000 rows only learns when its
        # timestep is sampled: under DT's 10k-step warm-up the model spent its first thousands of updates
        # unlearning that noise (training loss 0.46 vs 0.21 after 500 updates on halfcheetah-medium).
        nn.init.normal_(self.embed_timestep.weight, mean=0.0, std=0.02)
        if self.interleaved:
            self.embed_return = nn.Linear(1, dim)
            self.embed_state = nn.Linear(obs_dim, dim)
            self.embed_action = nn.Linear(act_dim, dim)
        elif rtg_embed == "joint":
            self.embed_step = nn.Linear(1 + obs_dim + act_dim, dim)  # (R_t, s_t, a_{t-1}) jointly
        else:
            self.embed_step = nn.Linear(obs_dim + act_dim, dim)  # (s_t, a_{t-1})
            if rtg_embed == "balanced":
                self.embed_step = nn.Sequential(self.embed_step, nn.LayerNorm(dim))
            self.embed_rtg = nn.Sequential(nn.Linear(1, dim), nn.LayerNorm(dim))
        self.embed_ln = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.backbone = build_backbone(backbone, dim, depth, dropout=dropout, **backbone_kwargs)
        if backbone_init == "gpt2":
            for module in self.backbone.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        elif backbone_init != "default":
            raise ValueError(f"backbone_init={backbone_init!r} is not valid; use 'default' or 'gpt2'")
        self.predict_action = nn.Sequential(nn.Linear(dim, act_dim), nn.Tanh())

    # --- embeddings ----------------------------------------------------------------------------------------
    def _norm_inputs(self, states: Tensor, rtg: Tensor) -> tuple[Tensor, Tensor]:
        """Raw states (..., obs) and RTG (...) -> normalised states and scaled RTG (..., 1)."""
        return (states - self.state_mean) / self.state_std, (rtg / self.rtg_scale).unsqueeze(-1)

    def _time(self, timesteps: Tensor) -> Tensor:
        return self.embed_timestep(timesteps.long().clamp(0, self.max_ep_len - 1))

    def _stacked(self, r: Tensor, s: Tensor, prev: Tensor) -> Tensor:
        """The stacked token before the timestep: (..., 1), (..., obs), (..., act) -> (..., D)."""
        if hasattr(self, "embed_rtg"):
            return self.embed_step(torch.cat((s, prev), dim=-1)) + self.embed_rtg(r)
        return self.embed_step(torch.cat((r, s, prev), dim=-1))

    def _finish(self, tokens: Tensor) -> Tensor:
        """LayerNorm then dropout on tokens (..., D), as DT's embed_ln and GPT-2's embedding dropout."""
        tokens = self.embed_ln(tokens)
        return self.drop(tokens) if self.training else tokens

    def embed(
        self, states: Tensor, actions: Tensor, rtg: Tensor, timesteps: Tensor, prev_action: Tensor | None = None
    ) -> Tensor:
        """(B, T, obs), (B, T, act), (B, T), (B, T) -> tokens (B, T * tokens_per_step, D)."""
        B, T = rtg.shape
        s, r = self._norm_inputs(states, rtg)
        time = self._time(timesteps)  # (B, T, D)
        if self.interleaved:
            tokens = torch.stack(
                (self.embed_return(r) + time, self.embed_state(s) + time, self.embed_action(actions) + time), dim=2
            )  # (B, T, 3, D)
            return self._finish(tokens.reshape(B, 3 * T, self.dim))
        first = actions.new_zeros(B, 1, self.act_dim) if prev_action is None else prev_action.unsqueeze(1)
        prev = torch.cat((first, actions[:, :-1]), dim=1)  # (B, T, act): a_{t-1}
        return self._finish(self._stacked(r, s, prev) + time)

    # --- full-sequence forward -----------------------------------------------------------------------------
    def forward(
        self,
        states: Tensor,
        actions: Tensor,
        rtg: Tensor,
        timesteps: Tensor,
        mask: Tensor | None = None,
        state: Any = None,
        prev_action: Tensor | None = None,
    ) -> tuple[Tensor, Any]:
        """Predict a_t for every step of a window.

        Args:
            states: (B, T, obs) raw. actions: (B, T, act); a_t is never visible to its own prediction.
            rtg: (B, T) raw returns-to-go. timesteps: (B, T) int step within the episode.
            mask: (B, T) bool, False at padding (left padding leaves the backbone state unchanged).
            state: backbone state to start from (None = initial), e.g. after a burn-in prefix.
            prev_action: (B, act) a_{t-1} before the first step (stacked layout only; default zeros).

        Returns:
            (pred (B, T, act) in [-1, 1], backbone state after the last token).
        """
        if states.ndim != 3 or states.shape[-1] != self.obs_dim or actions.shape[-1] != self.act_dim:
            raise ValueError(
                f"expected states (B, T, {self.obs_dim}) and actions (B, T, {self.act_dim}), "
                f"got {tuple(states.shape)} and {tuple(actions.shape)}"
            )
        B, T = rtg.shape
        x = self.embed(states, actions, rtg, timesteps, prev_action)  # (B, T*n, D)
        token_mask = None if mask is None else mask.repeat_interleave(self.tokens_per_step, dim=1)
        y, state = self.backbone(x, state=state, mask=token_mask)  # (B, T*n, D)
        if self.interleaved:
            y = y.reshape(B, T, 3, self.dim)[:, :, 1]  # the state tokens s_t
        return self.predict_action(y), state

    # --- one step at a time (recurrent acting) ------------------------------------------------------------
    def step(
        self, state_obs: Tensor, rtg: Tensor, timestep: Tensor, prev_action: Tensor, state: Any
    ) -> tuple[Tensor, Any]:
        """One environment step through ``backbone.step``: (n, obs), (n,), (n,), (n, act) -> action (n, act).

        interleaved: feeds R_t then s_t (the chosen a_t enters at the next step, see :meth:`step_deferred`);
        stacked: feeds the joint token (R_t, s_t, a_{t-1}). Matches ``forward`` over the whole trajectory.
        """
        s, r = self._norm_inputs(state_obs, rtg)
        time = self._time(timestep)  # (n, D)
        if self.interleaved:
            _, state = self.backbone.step(self._finish(self.embed_return(r) + time), state)
            y, state = self.backbone.step(self._finish(self.embed_state(s) + time), state)
        else:
            y, state = self.backbone.step(self._finish(self._stacked(r, s, prev_action) + time), state)
        return self.predict_action(y), state

    def step_deferred(
        self,
        state_obs: Tensor,
        rtg: Tensor,
        timestep: Tensor,
        state: Any,
        prev_action: Tensor,
        prev_timestep: Tensor | None = None,
        has_prev: Tensor | None = None,
        capturable: bool = False,
    ) -> tuple[Tensor, Any]:
        """One environment step that feeds the previous action late: the a_{t-1} token, then what :meth:`step`
        feeds, in one backbone call. ``state`` is the backbone state *before* a_{t-1}; the returned state is the one
        before a_t, so pass a_t (and t) back as ``prev_action``/``prev_timestep`` at the next step.

        interleaved: the tokens (a_{t-1}, R_t, s_t) run as one 3-token ``backbone.forward`` from ``state`` (exact:
        forward continues from a state like step does), so each layer does one matmul with 3n rows instead of three
        with n. ``has_prev`` (n,) bool, False where there is no a_{t-1} (a new episode: that token is padding and
        leaves the state unchanged); None means every row has one. ``prev_timestep`` is a_{t-1}'s timestep.
        If ``has_prev`` is all False, only (R_t, s_t) run. stacked: the same as :meth:`step`.

        ``capturable``: no host-side branch on ``has_prev`` (a CUDA graph cannot hold one, agents/graphs.py): the
        3 tokens always run, a_{t-1} masked where ``has_prev`` is False, which equals the 2-token call (a masked
        token leaves the state unchanged). ``has_prev`` is then required.
        """
        if not self.interleaved:
            return self.step(state_obs, rtg, timestep, prev_action, state)
        s, r = self._norm_inputs(state_obs, rtg)
        time = self._time(timestep)
        toks = [self.embed_return(r) + time, self.embed_state(s) + time]
        mask = None
        if capturable:
            toks.insert(0, self.embed_action(prev_action) + self._time(prev_timestep))
            mask = torch.stack([has_prev, torch.ones_like(has_prev), torch.ones_like(has_prev)], dim=1)  # (n, 3)
        elif has_prev is None or bool(has_prev.any()):
            toks.insert(0, self.embed_action(prev_action) + self._time(prev_timestep))
            if has_prev is not None and not bool(has_prev.all()):
                mask = torch.ones(len(has_prev), 3, dtype=torch.bool, device=has_prev.device)
                mask[:, 0] = has_prev
        y, state = self.backbone(self._finish(torch.stack(toks, dim=1)), state=state, mask=mask, last_only=True)
        return self.predict_action(y[:, -1]), state


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error averaged over the real steps: pred, target (B, T, act), mask (B, T) bool. Over the action
    dimensions it is averaged (``reduction="mean"``, DT's code) or summed (``"sum"``, d3rlpy's)."""
    m = mask.unsqueeze(-1)  # (B, T, 1)
    sq = torch.where(m, (pred - target) ** 2, torch.zeros((), dtype=pred.dtype, device=pred.device))
    per_dim = 1 if reduction == "sum" else pred.shape[-1]
    return sq.sum() / (m.sum() * per_dim).clamp_min(1)


def build_model(
    cfg: TrainConfig, obs_dim: int, act_dim: int, state_mean: Any = None, state_std: Any = None
) -> DecisionModel:
    """The DecisionModel a config describes."""
    return DecisionModel(
        obs_dim, act_dim, backbone=cfg.backbone, layout=cfg.layout, dim=cfg.dim, depth=cfg.depth,
        dropout=cfg.dropout, max_ep_len=cfg.max_ep_len, rtg_scale=cfg.rtg_scale, state_mean=state_mean,
        state_std=state_std, rtg_embed=cfg.rtg_embed, backbone_init=cfg.resolved_backbone_init(), n_heads=cfg.n_heads,
        backend=cfg.scan_backend, activation=cfg.resolved_activation(),
        **({"forget_bias": cfg.forget_bias} if cfg.forget_bias else {}),
    )  # fmt: skip
