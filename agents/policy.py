"""DecisionPolicy: the stateful acting object ``envs.evaluate`` drives (reset / act), in two modes.

- ``window`` (DT, kzl/decision-transformer gym/evaluation/evaluate_episodes.py): keep the last K steps of each
  slot, left-padded with a mask, and rerun the model over them at every step. Works for every backbone.
- ``recurrent``: carry the backbone state through the episode with ``backbone.step``; O(1) work per step.
  For the recurrent backbones (mingru, minlstm, gru, lstm).

In recurrent mode with ``cuda_graphs`` "auto" or "on" and a mingru/minlstm backbone, each step is
:class:`agents.graphs.GraphedActor` (replayed from a CUDA graph on CUDA; its eager body elsewhere under "auto").
Other backbones (the transformer's state grows; gru/lstm sync with the host) act eagerly.

The return-to-go of slot i at step t is ``target - (sum of the rewards slot i earned so far)``, as in DT.

>>> import numpy as np
>>> from agents.decision import DecisionModel
>>> m = DecisionModel(3, 2, backbone="gru", layout="stacked", dim=8, depth=1, dropout=0.0)
>>> pol = DecisionPolicy(m, target_return=100.0, mode="recurrent", context_len=4)
>>> pol.reset(2)
>>> pol.act(np.zeros((2, 3)), np.zeros(2), np.ones(2, bool)).shape
(2, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from agents.decision import DecisionModel
from agents.graphs import ACT_BACKBONES, MODES, GraphedActor, graph_mode

if TYPE_CHECKING:
    from agents.config import TrainConfig

__all__ = ["DecisionPolicy", "acting_policy"]


class DecisionPolicy:
    """Acting wrapper around a DecisionModel for ``n`` parallel environment slots.

    Args:
        model: the trained model (put in eval mode here; no gradients are taken).
        target_return: return-to-go at t=0 (raw, e.g. 3600 for hopper).
        mode: "window" or "recurrent".
        context_len: K, steps rerun in window mode.
        record_actions: keep every chosen action in ``self.actions_taken`` (for histograms).
        cuda_graphs: "off" (default: ``model.step_deferred``), "auto" or "on": recurrent acting through a
            GraphedActor for mingru/minlstm ("on" off CUDA is a ValueError at ``reset``).
    """

    def __init__(
        self,
        model: DecisionModel,
        target_return: float,
        mode: str = "window",
        context_len: int = 20,
        record_actions: bool = False,
        cuda_graphs: str = "off",
    ) -> None:
        if mode not in ("window", "recurrent"):
            raise ValueError(f"acting mode {mode!r} is not valid; use 'window' or 'recurrent'")
        if cuda_graphs not in MODES:
            raise ValueError(f"cuda_graphs={cuda_graphs!r} is not valid; use one of {list(MODES)}")
        self.model = model.eval()
        self.target_return = float(target_return)
        self.mode, self.K = mode, int(context_len)
        self.record_actions = record_actions
        self.actions_taken: list[np.ndarray] = []
        self.n = 0
        self.device = next(model.parameters()).device
        graphable = mode == "recurrent" and cuda_graphs != "off" and model.backbone_name in ACT_BACKBONES
        self.graph_mode = cuda_graphs if graphable else "off"
        self.actor: GraphedActor | None = None  # built at reset for n slots, kept while n stays the same

    # --- protocol --------------------------------------------------------------------------------------------
    def reset(self, n_envs: int) -> None:
        """Forget every slot; the next ``act`` must have done=True everywhere (envs.evaluate does that)."""
        self.n = n_envs
        obs_dim, act_dim = self.model.obs_dim, self.model.act_dim
        self.rtg = np.full(n_envs, self.target_return, dtype=np.float64)  # (n,) raw return-to-go
        self.t = np.zeros(n_envs, dtype=np.int64)  # (n,) step within the episode
        dev = self.device
        self.prev_action = torch.zeros(n_envs, act_dim, device=dev)  # (n, act) a_{t-1}
        self.state: Any = None  # recurrent mode: backbone state before a_{t-1} (fed with the next step's tokens)
        self.prev_t = torch.zeros(n_envs, dtype=torch.long, device=dev)  # recurrent mode: timestep of a_{t-1}
        self.started = False  # graphed recurrent mode: an act has run since reset
        if self.graph_mode != "off" and (self.actor is None or self.actor.n != n_envs):
            self.actor = GraphedActor(self.model, n_envs, self.graph_mode)  # captures at its first act on CUDA
        # window mode: the last K steps, left-padded
        self.w_states = torch.zeros(n_envs, self.K, obs_dim, device=dev)
        self.w_actions = torch.zeros(n_envs, self.K, act_dim, device=dev)
        self.w_rtg = torch.zeros(n_envs, self.K, device=dev)
        self.w_time = torch.zeros(n_envs, self.K, dtype=torch.long, device=dev)
        self.w_mask = torch.zeros(n_envs, self.K, dtype=torch.bool, device=dev)
        self.actions_taken = []

    @torch.inference_mode()
    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """obs (n, obs), reward (n,) of the previous step, done (n,) bool (obs starts a new episode) -> (n, act)."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != (self.n, self.model.obs_dim):
            raise ValueError(f"obs has shape {obs.shape}, expected (n_envs, obs) = ({self.n}, {self.model.obs_dim})")
        done = np.asarray(done, dtype=bool)
        # RTG_t = target - rewards so far (DT); t counts steps within the episode
        self.rtg = np.where(done, self.target_return, self.rtg - np.asarray(reward, dtype=np.float64))
        self.t = np.where(done, 0, self.t + 1)
        dev = self.device
        done_t = torch.as_tensor(done, device=dev)
        self.prev_action[done_t] = 0.0
        s = torch.from_numpy(obs).to(dev)
        r = torch.as_tensor(self.rtg, dtype=torch.float32, device=dev)
        t = torch.as_tensor(self.t, device=dev)
        action = self._act_window(s, r, t, done_t) if self.mode == "window" else self._act_recurrent(s, r, t, done)
        self.prev_action = action
        out = action.float().cpu().numpy().astype(np.float64)
        if self.record_actions:
            self.actions_taken.append(out.copy())
        return out

    # --- window mode --------------------------------------------------------------------------------------------
    def _act_window(self, s: Tensor, r: Tensor, t: Tensor, done: Tensor) -> Tensor:
        """Shift each slot's window left by one, append this step, rerun the model over the K steps."""
        for buf in (self.w_states, self.w_actions, self.w_rtg, self.w_time, self.w_mask):
            buf[:] = torch.roll(buf, -1, dims=1)
            buf[done] = 0  # a new episode starts from an empty (fully padded) window
        self.w_states[:, -1], self.w_rtg[:, -1], self.w_time[:, -1] = s, r, t
        self.w_actions[:, -1] = 0.0  # a_t is unknown; causality keeps it from the prediction (DT does the same)
        self.w_mask[:, -1] = True
        pred, _ = self.model(self.w_states, self.w_actions, self.w_rtg, self.w_time, self.w_mask)
        action = pred[:, -1]  # (n, act)
        self.w_actions[:, -1] = action
        return action

    # --- recurrent mode ------------------------------------------------------------------------------------------
    def _act_recurrent(self, s: Tensor, r: Tensor, t: Tensor, done: np.ndarray) -> Tensor:
        """One backbone step per slot from its carried state; slots with done restart from the initial state."""
        if self.actor is not None:
            return self._act_graphed(s, r, t, done)
        state = self.state
        has_prev = None  # rows that carry an a_{t-1} not yet fed (interleaved: it is fed with this step's tokens)
        if state is not None and done.all():
            state = None
        elif state is not None and done.any():
            done_t = torch.as_tensor(done, device=self.device)
            state = self.model.backbone.reset_state(state, done_t)
            has_prev = ~done_t
        if state is None:
            has_prev = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        action, self.state = self.model.step_deferred(s, r, t, state, self.prev_action, self.prev_t, has_prev)
        self.prev_t = t
        return action

    def _act_graphed(self, s: Tensor, r: Tensor, t: Tensor, done: np.ndarray) -> Tensor:
        """The same step through the GraphedActor, whose static buffers hold the backbone state."""
        assert self.actor is not None
        done_t = torch.as_tensor(done, device=self.device)
        if self.started:
            self.actor.reset(done_t)  # finished rows go back to the initial state
        else:
            self.actor.reset(torch.ones_like(done_t))  # a reused actor holds the previous episodes' state
        has_prev = ~done_t if self.started else torch.zeros(self.n, dtype=torch.bool, device=self.device)
        action = self.actor.act(s, r, t.long(), self.prev_action, self.prev_t, has_prev).clone()
        self.started, self.prev_t = True, t
        return action


def acting_policy(
    model: DecisionModel, cfg: TrainConfig, target: float, mode: str | None = None, record_actions: bool = False
) -> DecisionPolicy:
    """The DecisionPolicy a run acts with, in evaluation, videos, ``run_rl.py eval`` and ``agents.load_agent``:
    ``mode`` (default the run's acting mode), the run's K, and recurrent acting through a CUDA graph where the
    run's ``cuda_graphs`` allows it and the model is on CUDA."""
    on_cuda = next(model.parameters()).device.type == "cuda"
    graphs = graph_mode(cfg) if on_cuda else "off"
    mode = mode or cfg.resolved_acting_mode()
    return DecisionPolicy(model, target, mode, cfg.context_len, record_actions=record_actions, cuda_graphs=graphs)
