"""A training update and a recurrent acting step replayed from CUDA graphs, so that launch overhead is paid once.

At DT's sizes (K=20, batch 64, dim 128) one Decision-agent update is ~300 small kernels; on an H200 it costs
10-15 ms whatever the backbone (docs/RESULTS.md, "Speed and memory"), i.e. launch-bound. A CUDA graph records the
kernels of one update once and replays them with one launch (PyTorch "CUDA Graphs", whole-network capture:
https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture). We use ``torch.cuda.graphs`` directly rather
than ``torch.compile(mode="reduce-overhead")``: no compile time per config, no recompiles, and the same Python code
runs eagerly on the CPU, where the tests check it.

- :class:`GraphedUpdate`: the training update (agents/trainer.py builds it for every run): loss, backward, gradient
  clipping and AdamW, captured as one graph on CUDA and run eagerly elsewhere, behind the same ``step`` call. The
  batch is copied into static input buffers first; the LR schedule runs after each replay as an in-place ``fill_``
  of the optimizer's tensor learning rate (``LambdaLR`` writes into a tensor ``lr``), so warm-up needs no
  re-capture.
- :class:`GraphedActor`: :meth:`agents.decision.DecisionModel.step_deferred` for a fixed number of environments,
  with the backbone state held in static buffers that the graph itself updates.

``mode``: ``"on"`` (CUDA graphs; a ValueError off CUDA), ``"off"`` (eager), ``"auto"`` (graphs when the model is
on CUDA; eager for gru/lstm, whose mixer syncs with the host). The eager fallback runs the *same* Python body as the
graph, without capturing it, so the CPU tests cover everything but the capture. Limits of a graph: fixed shapes (a
batch of another shape raises), no host syncs, and dropout draws from the graph-safe Philox offsets, so with
dropout > 0 a graphed run is not bit-equal to an eager one (equal in distribution); with dropout 0 it matches the
eager step within fp32 tolerance.

>>> import torch
>>> from agents.config import TrainConfig
>>> from agents.trainer import build_model, compute_loss, make_optimizer
>>> cfg = TrainConfig(backbone="mingru", layout="stacked", dim=8, depth=1, dropout=0.0, lr=1e-3, warmup_steps=10)
>>> m = build_model(cfg, obs_dim=3, act_dim=2)
>>> opt, sched = make_optimizer(m.parameters(), cfg)
>>> upd = GraphedUpdate(m, opt, sched, 0.25, lambda model, b: compute_loss(model, b, cfg), mode="off")
>>> B, K = 4, 5
>>> batch = {"states": torch.randn(B, K, 3), "actions": torch.rand(B, K, 2) - 0.5, "rtg": torch.ones(B, K),
...          "timesteps": torch.arange(K).expand(B, K), "mask": torch.ones(B, K, dtype=torch.bool)}
>>> out = upd.step(batch)
>>> out.loss.shape, out.pred.shape, out.mask.shape
(torch.Size([]), torch.Size([4, 5, 2]), torch.Size([4, 5]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from agents.config import CUDA_GRAPH_MODES as MODES
from agents.config import TrainConfig
from agents.decision import DecisionModel

__all__ = [
    "ACT_BACKBONES", "MODES", "UPDATE_BACKBONES", "GraphedActor", "GraphedUpdate", "StepOutput", "graph_mode",
    "use_graphs",
]  # fmt: skip

WARMUP_ITERS = 3  # eager iterations on a side stream before capture (lazy state, cuBLAS workspaces, autotuning)


# Backbones whose forward has no host sync. minrnn.baselines.TorchRNNMixer (gru, lstm) reads ``mask.all()`` and the
# row lengths on the host to pack padded sequences, which a capture forbids; the transformer's KV cache grows, so it
# can be graphed for training but not for acting.
UPDATE_BACKBONES = ("mingru", "minlstm", "transformer")
ACT_BACKBONES = ("mingru", "minlstm")


def use_graphs(mode: str, device: torch.device, backbone: str | None = None, allowed: tuple[str, ...] = ()) -> bool:
    """Resolve ``mode`` (one of :data:`MODES`) for a model on ``device``: True means capture a CUDA graph.

    With ``backbone`` given and not in ``allowed``, "auto" falls back to eager and "on" raises.
    """
    if mode not in MODES:
        raise ValueError(f"cuda_graphs={mode!r} is not valid; choose one of {MODES}")
    if mode == "on" and device.type != "cuda":
        raise ValueError(f"cuda_graphs='on' needs a model on CUDA, got device {device}; use 'auto' or 'off'")
    if backbone is not None and backbone not in allowed:
        if mode == "on":
            raise ValueError(f"cuda_graphs='on' cannot capture backbone {backbone!r} here (graph-safe: {allowed}); "
                             "use 'auto' (eager for it) or 'off'")  # fmt: skip
        return False
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def graph_mode(cfg: TrainConfig, distributed: bool = False) -> str:
    """``cfg.cuda_graphs`` for a run, before the device and backbone are known (:func:`use_graphs` decides those):
    "auto" becomes "off" with ``compile`` (it removes the same launch overhead) and in a ``distributed`` run (DDP's
    bucketed all-reduce inside a captured graph is untested here); "on" in a distributed run is a ValueError. Every
    train_mode samples fixed-shape batches ((B, segment_len) for segments), so none of them turns it off."""
    if cfg.cuda_graphs == "on" and distributed:
        raise ValueError(
            "cuda_graphs='on' is not supported in a multi-process (torchrun/DDP) run; use 'auto' (off there) or 'off'"
        )
    if cfg.cuda_graphs == "auto" and (cfg.compile or distributed):
        return "off"
    return cfg.cuda_graphs


class StepOutput(NamedTuple):
    """What one update returns, as device tensors (no host sync): the loss (0-dim), the gradient norm before
    clipping (0-dim), the predicted actions (B, K, act) and the mask of real steps (B, K). Graphed, they are the
    graph's output buffers, overwritten by the next step: read them before it."""

    loss: Tensor
    grad_norm: Tensor
    pred: Tensor
    mask: Tensor


def _check_capturable(opt: torch.optim.Optimizer) -> None:
    for group in opt.param_groups:
        if not group.get("capturable", False) or not isinstance(group["lr"], Tensor):
            raise ValueError(
                "a CUDA-graphed update needs an optimizer with capturable=True and a tensor lr "
                f"(got capturable={group.get('capturable')}, lr={type(group['lr']).__name__}); "
                "build it with agents.trainer.make_optimizer(..., graphs=True)"
            )


class GraphedUpdate:
    """The training update, captured once as a CUDA graph and replayed for every batch (eager off CUDA).

    Args:
        model: the module trained (e.g. a DecisionModel, possibly DDP-wrapped or compiled), in train mode.
        optimizer, scheduler: from ``agents.trainer.make_optimizer`` (with ``graphs=True`` when graphed; the
            scheduler may be None).
        grad_clip: max global gradient norm; 0 or None: no clipping (the norm is still computed).
        loss_fn: ``loss_fn(model, batch) -> (loss, pred (B, K, act), mask (B, K))``, e.g.
            ``agents.trainer.compute_loss`` with its config.
        mode: "auto" | "on" | "off", see the module docstring.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        grad_clip: float | None,
        loss_fn: Callable[[nn.Module, dict[str, Tensor]], tuple[Tensor, Tensor, Tensor]],
        mode: str = "auto",
    ) -> None:
        self.model, self.optimizer, self.scheduler, self.loss_fn = model, optimizer, scheduler, loss_fn
        self.max_norm = grad_clip or math.inf
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        backbone = getattr(model, "backbone_name", None)  # a DecisionModel says; other modules are trusted
        self.graphed = use_graphs(mode, self.params[0].device, backbone, UPDATE_BACKBONES)
        if self.graphed:
            _check_capturable(optimizer)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, Tensor] = {}

    def _body(self, batch: dict[str, Tensor]) -> StepOutput:
        """loss -> backward -> clip -> AdamW, with no host syncs (what the graph records)."""
        loss, pred, mask = self.loss_fn(self.model, batch)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_norm)
        self.optimizer.step()
        return StepOutput(loss.detach(), grad_norm, pred.detach(), mask)

    def step(self, batch: dict[str, Tensor]) -> StepOutput:
        """Train on ``batch`` (tensors on the model's device; same shapes every call when graphed), then step the
        scheduler."""
        if not self.graphed:
            self.optimizer.zero_grad(set_to_none=True)
            out = self._body(batch)
        else:
            if self.graph is None:
                self._capture(batch)
            self._fill(batch)
            self.graph.replay()
            out = self.static_out
        if self.scheduler is not None:
            self.scheduler.step()  # LambdaLR fills the tensor lr in place: the graph reads it at the next replay
        return out

    def _fill(self, batch: dict[str, Tensor]) -> None:
        for k, buf in self.static.items():
            v = batch[k]
            if v.shape != buf.shape or v.dtype != buf.dtype:
                raise ValueError(
                    f"a graphed update needs batches of one shape: {k!r} was captured as {tuple(buf.shape)} "
                    f"{buf.dtype}, got {tuple(v.shape)} {v.dtype}; drop the ragged batch or use cuda_graphs='off'"
                )
            buf.copy_(v, non_blocking=True)

    def _capture(self, batch: dict[str, Tensor]) -> None:
        """Warm up on a side stream, restore the weights and optimizer state, then record one update."""
        self.static = {k: v.detach().clone() for k, v in batch.items()}
        snap = _snapshot(self.params, self.optimizer)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_ITERS):
                self.optimizer.zero_grad(set_to_none=True)
                self._body(self.static)
        torch.cuda.current_stream().wait_stream(side)
        _restore(snap, self.params, self.optimizer)  # the warm-up steps must not count as training
        self.optimizer.zero_grad(set_to_none=True)  # grads are then allocated inside the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self._body(self.static)


def _snapshot(params: list[Tensor], opt: torch.optim.Optimizer) -> tuple[list[Tensor], dict[Tensor, dict]]:
    state = {p: {k: v.clone() for k, v in s.items() if isinstance(v, Tensor)} for p, s in opt.state.items()}
    return [p.detach().clone() for p in params], state


@torch.no_grad()
def _restore(snap: tuple[list[Tensor], dict[Tensor, dict]], params: list[Tensor], opt: torch.optim.Optimizer) -> None:
    """Copy weights and optimizer state back *in place* (the graph records addresses); state created during the
    warm-up is zeroed, which is AdamW's initial state (step 0, zero moments)."""
    saved_params, saved_state = snap
    for p, v in zip(params, saved_params):
        p.copy_(v)
    for p, s in opt.state.items():
        for k, v in s.items():
            if isinstance(v, Tensor):
                v.copy_(saved_state[p][k]) if p in saved_state else v.zero_()


class GraphedActor:
    """Recurrent acting for ``n`` environments: ``DecisionModel.step_deferred`` replayed from a CUDA graph.

    The backbone state lives in static buffers (initial state at construction); each :meth:`act` advances it, and
    :meth:`reset` puts finished environments back to the initial state. Needs a backbone whose state has a fixed
    shape (mingru, minlstm, gru, lstm): a transformer's KV cache grows every step and is refused. gru and lstm run
    eagerly under "auto" (their mixer reads the mask on the host, see :data:`ACT_BACKBONES`).

    Args:
        model: a DecisionModel in eval mode, on its device.
        n: number of environments (rows), fixed.
        mode: "auto" | "on" | "off", see the module docstring.
    """

    def __init__(self, model: DecisionModel, n: int, mode: str = "auto") -> None:
        self.model, self.n = model, n
        dev = next(model.parameters()).device
        self.graphed = use_graphs(mode, dev, model.backbone_name, ACT_BACKBONES)
        z = torch.zeros
        self.inputs = {
            "obs": z(n, model.obs_dim, device=dev), "rtg": z(n, device=dev),
            "timestep": z(n, dtype=torch.long, device=dev),
            "prev_action": z(n, model.act_dim, device=dev), "prev_timestep": z(n, dtype=torch.long, device=dev),
            "has_prev": z(n, dtype=torch.bool, device=dev),
        }  # fmt: skip
        self.flat, self.spec = tree_flatten(self._initial_state())  # None leaves (absent conv states) stay None
        self.leaves = [t for t in self.flat if isinstance(t, Tensor)]  # the static state buffers
        self.action = z(n, model.act_dim, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None

    @torch.no_grad()
    def _initial_state(self) -> Any:
        """Run two probe steps to get the state's structure, check that its shapes are fixed, then reset every row."""
        inp = self.inputs
        args = (inp["obs"], inp["rtg"], inp["timestep"])
        _, s1 = self.model.step_deferred(*args, None, inp["prev_action"], inp["prev_timestep"])
        _, s2 = self.model.step_deferred(*args, s1, inp["prev_action"], inp["prev_timestep"])
        shapes = [tuple(t.shape) for t in _tensors(s1)], [tuple(t.shape) for t in _tensors(s2)]
        opaque = [type(t).__name__ for t in tree_flatten(s2)[0] if t is not None and not isinstance(t, Tensor)]
        if shapes[0] != shapes[1] or opaque:  # e.g. a transformer's KVCache, which grows every step
            raise ValueError(
                f"backbone {self.model.backbone_name!r} has a state that grows with time ({shapes[0]} -> "
                f"{shapes[1]}, {opaque or 'no opaque leaves'}); graphed acting needs a fixed-shape state: "
                "mingru, minlstm, gru or lstm"
            )
        state = self.model.backbone.reset_state(s2, torch.ones(self.n, dtype=torch.bool, device=inp["obs"].device))
        flat, spec = tree_flatten(state)
        return tree_unflatten([t.clone() if isinstance(t, Tensor) else t for t in flat], spec)

    def _body(self) -> None:
        """One deferred step from the static inputs and state; writes the action and the new state in place."""
        inp = self.inputs
        action, new = self.model.step_deferred(
            inp["obs"], inp["rtg"], inp["timestep"], tree_unflatten(self.flat, self.spec), inp["prev_action"],
            inp["prev_timestep"], inp["has_prev"], capturable=True,
        )  # fmt: skip
        self.action.copy_(action)
        for buf, v in zip(self.leaves, _tensors(new), strict=True):
            buf.copy_(v)

    @torch.no_grad()
    def act(self, obs: Tensor, rtg: Tensor, timestep: Tensor, prev_action: Tensor, prev_timestep: Tensor,
            has_prev: Tensor) -> Tensor:  # fmt: skip
        """Feed a_{t-1} (where ``has_prev``) then (R_t, s_t); return a_t (n, act). Shapes as
        :meth:`DecisionModel.step_deferred`: obs (n, obs), rtg/timestep/prev_timestep/has_prev (n,), prev_action
        (n, act). The returned tensor is a buffer overwritten by the next call: clone it to keep it."""
        new = {"obs": obs, "rtg": rtg, "timestep": timestep, "prev_action": prev_action,
               "prev_timestep": prev_timestep, "has_prev": has_prev}  # fmt: skip
        for k, buf in self.inputs.items():
            if new[k].shape != buf.shape:
                raise ValueError(
                    f"GraphedActor(n={self.n}): {k} must have shape {tuple(buf.shape)}, got {tuple(new[k].shape)}"
                )
            buf.copy_(new[k])
        if not self.graphed:
            self._body()
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
        return self.action

    @torch.no_grad()
    def reset(self, done: Tensor) -> None:
        """Put the rows where ``done`` (n,) bool is True back to the initial state (outside the graph)."""
        state = self.model.backbone.reset_state(tree_unflatten(self.flat, self.spec), done)
        for buf, v in zip(self.leaves, _tensors(state), strict=True):
            buf.copy_(v)

    def _capture(self) -> None:
        saved = [t.clone() for t in self.leaves]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_ITERS):
                self._body()
        torch.cuda.current_stream().wait_stream(side)
        for buf, v in zip(self.leaves, saved):
            buf.copy_(v)  # the warm-up must not advance the state
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()


def _tensors(tree: Any) -> list[Tensor]:
    """The tensor leaves of a backbone state (a nested list/tuple with None where a block has no conv state)."""
    return [t for t in tree_flatten(tree)[0] if isinstance(t, Tensor)]
