"""agents/ensemble.py: N seeds trained as one vmapped model equal N separately trained models (dropout 0)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from agents.config import TrainConfig
from agents.decision import DecisionModel
from agents.ensemble import Ensemble, train_ensemble

N, B, K, OBS, ACT = 3, 4, 6, 5, 2


def _models(backbone: str, layout: str) -> list[DecisionModel]:
    out = []
    for seed in range(N):
        torch.manual_seed(seed)
        out.append(DecisionModel(OBS, ACT, backbone=backbone, layout=layout, dim=16, depth=2, dropout=0.0,
                                 backend="logspace"))  # fmt: skip
    return out


def _batches(steps: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(7)
    out = []
    for _ in range(steps):
        mask = torch.ones(N, B, K, dtype=torch.bool)
        mask[:, 0, :2] = False
        out.append({"states": torch.randn(N, B, K, OBS, generator=gen),
                    "actions": torch.rand(N, B, K, ACT, generator=gen) * 2 - 1,
                    "rtg": torch.rand(N, B, K, generator=gen) * 100,
                    "timesteps": torch.randint(0, 1000, (N, B, K), generator=gen), "mask": mask})  # fmt: skip
    return out


@pytest.mark.parametrize(
    "backbone,layout", [("mingru", "stacked"), ("minlstm", "interleaved"), ("mingru", "interleaved")]
)
def test_batched_equals_separate(backbone: str, layout: str, eager_reference: Callable[..., list[float]]) -> None:
    steps, lr, clip = 4, 3e-3, 0.1  # a small clip, so that clipping is active for every seed
    batches = _batches(steps)
    models = _models(backbone, layout)
    refs = [copy.deepcopy(m) for m in models]
    cfg = TrainConfig(lr=lr, weight_decay=1e-4, warmup_steps=2, grad_clip=clip, dropout=0.0)
    got = train_ensemble(models, lambda s: batches[s], steps, cfg)
    # each seed on its own, as agents/trainer.py's update (AdamW, clip_grad_norm_, LambdaLR warm-up 2)
    per_seed = [[{k: v[i] for k, v in b.items()} for b in batches] for i in range(N)]
    want = torch.tensor([eager_reference(r, per_seed[i], lr, 1e-4, 2, clip) for i, r in enumerate(refs)]).T
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for m, r in zip(models, refs):
        for (name, p), q in zip(m.named_parameters(), r.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_dropout_differs_per_seed() -> None:
    """randomness="different": identical seeds on identical data still get different dropout masks."""
    torch.manual_seed(0)
    m = DecisionModel(OBS, ACT, backbone="mingru", layout="stacked", dim=16, depth=1, dropout=0.5, backend="logspace")
    ens = Ensemble([copy.deepcopy(m) for _ in range(2)], TrainConfig(lr=1e-3))
    b = {k: v[:1].expand(2, *v.shape[1:]) for k, v in _batches(1)[0].items()}
    losses = ens.step(b)
    assert losses[0] != losses[1]


def test_errors() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([], TrainConfig())
    a = DecisionModel(OBS, ACT, backbone="gru", layout="stacked", dim=8, depth=1)
    c = DecisionModel(OBS, ACT, backbone="gru", layout="stacked", dim=8, depth=2)
    with pytest.raises(ValueError, match="same architecture"):
        Ensemble([a, c], TrainConfig())
    ens = Ensemble([a, copy.deepcopy(a)], TrainConfig())
    with pytest.raises(ValueError, match=r"leading dim N=2; got \(3, 4, 6, 5\)"):
        ens.step(_batches(1)[0])
