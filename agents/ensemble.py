"""Train N seeds of one config as one batched model, so that one process fills a GPU.

A Decision agent at DT's sizes (dim 128, batch 64, K=20) leaves an H200 mostly idle: each update is launch-bound
(docs/RESULTS.md, "Speed and memory"). N seeds stacked along a new leading dimension run the same kernels once on N
times the data.

How (PyTorch "Model ensembling" tutorial, https://pytorch.org/tutorials/intermediate/ensembling.html):

- ``torch.func.stack_module_state(models)`` stacks every parameter and buffer into (N, ...) tensors;
- ``torch.func.functional_call`` runs one "base" copy of the module with seed i's tensors, and ``torch.func.vmap``
  maps that over the N seeds: the loss is (N,), one value per seed;
- ``sum(loss).backward()`` gives each seed exactly its own gradient (the seeds share no parameters);
- per-seed gradient clipping: each seed's global norm is computed over its own slices and each seed is scaled by
  ``min(1, max_norm / (norm + 1e-6))``, the formula of ``torch.nn.utils.clip_grad_norm_``;
- the trainer's loss and optimizer: ``agents.trainer.compute_loss`` (the config's train_mode, loss_reduction and
  bf16 autocast) for each seed, and ``agents.trainer.make_optimizer`` (AdamW and the config's lr_schedule) over the
  stacked tensors;
- per-seed AdamW: AdamW is elementwise (Loshchilov & Hutter 2019, Algorithm 2), so one AdamW over the stacked
  (N, ...) tensors *is* N independent AdamWs: every seed has its own first and second moments. The step count and
  the learning-rate schedule are shared, as they are equal across seeds anyway.
- dropout: ``vmap(..., randomness="different")`` draws an independent dropout mask for each seed from the one global
  generator. So seeds differ in their dropout noise as separate runs do, but the masks are not the ones N separate
  processes seeded 0..N-1 would draw: batched and separate runs agree exactly only with dropout 0 (the test).

Limits: every op in the model must support vmap. The scan back-ends "sequential", "logspace" and "triton"/
"triton_chunked" (a vmap rule folds the seeds into the batch) do; the numba "cpu" back-end and fla's kernels do not,
so on CPU build the models with ``backend="logspace"``. Backbones: mingru and minlstm are tested; the transformer
runs, but SDPA has no batching rule (vmap loops over the seeds); gru/lstm do not (``minrnn.baselines.TorchRNNMixer``
branches on ``mask.all()``, data-dependent control flow that vmap refuses).

>>> import torch
>>> from agents.config import TrainConfig
>>> from agents.decision import DecisionModel
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> models = [DecisionModel(3, 2, backbone="mingru", layout="stacked", dim=8, depth=1, dropout=0.0, backend="logspace")
...           for _ in range(2)]
>>> def sample(step):
...     N, B, K = 2, 4, 5
...     return {"states": torch.randn(N, B, K, 3), "actions": torch.rand(N, B, K, 2) - 0.5,
...             "rtg": torch.ones(N, B, K), "timesteps": torch.arange(K).expand(N, B, K),
...             "mask": torch.ones(N, B, K, dtype=torch.bool)}
>>> cfg = TrainConfig(lr=1e-3, warmup_steps=1, dropout=0.0)
>>> losses = train_ensemble(models, sample, steps=3, cfg=cfg)
>>> tuple(losses.shape)
(3, 2)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from agents.config import TrainConfig
from agents.trainer import compute_loss, make_optimizer

__all__ = ["Ensemble", "train_ensemble"]


class Ensemble:
    """N copies of one architecture as stacked (N, ...) parameters, with a vmapped loss and a per-seed update.

    Args:
        models: N modules of one architecture (e.g. DecisionModels built with seeds 0..N-1), on one device.
        cfg: the training config: loss (train_mode, loss_reduction, bf16), AdamW and its schedule (lr,
            weight_decay, warmup_steps, lr_schedule), per-seed gradient clipping (grad_clip), as the trainer.
        randomness: vmap's randomness for dropout: "different" (each seed its own masks), "same" or "error".
    """

    def __init__(self, models: list[nn.Module], cfg: TrainConfig, randomness: str = "different") -> None:
        if len(models) < 1:
            raise ValueError("train_ensemble needs at least one model, got an empty list")
        names = [sorted(n for n, _ in m.named_parameters()) for m in models]
        if any(n != names[0] for n in names):
            raise ValueError("every model of an ensemble must have the same architecture (parameter names differ)")
        self.models, self.n, self.cfg = models, len(models), cfg
        self.params, self.buffers = stack_module_state(models)  # name -> (N, ...) leaf tensors
        self.base = copy.deepcopy(models[0]).to("meta")  # the structure only; tensors come from self.params
        self.max_norm = cfg.grad_clip or math.inf
        self.opt, self.sched = make_optimizer(self.params.values(), cfg)
        self._losses = vmap(self._loss_one, in_dims=(0, 0, 0), randomness=randomness)

    def _loss_one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        """One seed's loss: its params/buffers (no N dim inside vmap) and its batch (B, K, ...)."""

        def model(*args: Tensor, **kwargs: object) -> object:
            return functional_call(self.base, (params, buffers), args, kwargs)

        with torch.autocast(batch["states"].device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            return compute_loss(model, batch, self.cfg)[0]  # type: ignore[arg-type]

    def step(self, batch: dict[str, Tensor]) -> Tensor:
        """One update of every seed on ``batch`` (each tensor (N, B, ...): seed i trains on row i) -> losses (N,)."""
        for k, v in batch.items():
            if v.shape[0] != self.n:
                raise ValueError(f"ensemble batch {k!r} must have a leading dim N={self.n}; got {tuple(v.shape)}")
        self.opt.zero_grad(set_to_none=True)
        losses = self._losses(self.params, self.buffers, batch)  # (N,)
        losses.sum().backward()
        self._clip_per_seed()
        self.opt.step()
        self.sched.step()
        return losses.detach()

    @torch.no_grad()
    def _clip_per_seed(self) -> Tensor:
        """Scale each seed's gradients to a global norm <= max_norm; returns the norms before clipping (N,)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        sq = torch.stack([g.reshape(self.n, -1).float().pow(2).sum(1) for g in grads]).sum(0)  # (N,)
        norms = sq.sqrt()
        coef = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)  # (N,), as clip_grad_norm_
        for g in grads:
            g.mul_(coef.to(g.dtype).view(-1, *([1] * (g.dim() - 1))))
        return norms

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy seed i's trained parameters and buffers into ``models[i]`` (for checkpoints and evaluation)."""
        for i, m in enumerate(self.models):
            for name, t in m.named_parameters():
                t.copy_(self.params[name][i])
            for name, t in m.named_buffers():
                t.copy_(self.buffers[name][i])


def train_ensemble(
    models: list[nn.Module], sample_fn: Callable[[int], dict[str, Tensor]], steps: int, cfg: TrainConfig
) -> Tensor:
    """Train ``models`` (N seeds of one config) together for ``steps`` updates; returns the losses (steps, N).

    ``sample_fn(step)`` returns the batch of that step with a leading seed dim: tensors (N, B, ...). ``cfg`` is the
    training config (see :class:`Ensemble`). The trained weights are written back into ``models`` at the end.
    """
    ens = Ensemble(models, cfg)
    losses = torch.stack([ens.step(sample_fn(step)) for step in range(steps)]) if steps else torch.zeros(0, len(models))
    ens.write_back()
    return losses
