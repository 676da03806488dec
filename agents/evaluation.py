"""Evaluate a DecisionModel once per target return, with ``envs.evaluate``; the typed result train and eval share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.config import DATA_MAX, TrainConfig
from agents.decision import DecisionModel
from agents.policy import acting_policy
from envs.scores import DT_TARGETS, d4rl_env_key
from envs.store import StoreInfo

__all__ = ["Evaluation", "evaluate_model", "resolve_targets", "score_of"]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a model: per target return, ``EvalResult.to_dict()`` plus the target and acting mode."""

    per_target: dict[str, dict[str, Any]]  # {"3600": {...}, "1800": {...}}, in the order of the targets
    actions: np.ndarray | None  # (N, act) actions taken for the first target when recorded, else None

    @property
    def summary(self) -> dict[str, Any]:
        """The headline: the first target's result."""
        return next(iter(self.per_target.values()))

    @property
    def score(self) -> float:
        """The number "best" compares: the headline's normalised score, or its return when there is no reference."""
        return score_of(self.summary)

    def brief(self) -> dict[str, dict[str, float]]:
        """Return and score per target (an evals.jsonl line)."""
        return {
            key: {"return_mean": r["return_mean"], "normalized_mean": r["normalized_mean"]}
            for key, r in self.per_target.items()
        }

    def brief_text(self) -> str:
        return ", ".join(
            f"target {k}: return {r['return_mean']:.1f}, score {r['normalized_mean']:.1f}"
            for k, r in self.per_target.items()
        )


def score_of(summary: dict[str, Any]) -> float:
    """The normalised score of an evaluation summary, or its return when there is no reference (NaN or None).

    >>> score_of({"normalized_mean": 48.2, "return_mean": 1590.0})
    48.2
    >>> score_of({"normalized_mean": float("nan"), "return_mean": 812.5})
    812.5
    """
    score = summary["normalized_mean"]
    return summary["return_mean"] if score is None or math.isnan(score) else score


def evaluate_model(
    model: DecisionModel,
    cfg: TrainConfig,
    store_info: StoreInfo,
    targets: tuple[float, ...],
    episodes: int | None = None,
    n_envs: int | None = None,
    seed: int | None = None,
    acting_mode: str | None = None,
    record_actions: bool = False,
) -> Evaluation:
    """Evaluate ``model`` once per target with ``envs.evaluate``; the first target is the headline.

    ``episodes``, ``n_envs``, ``seed`` and ``acting_mode`` default to the config's evaluation settings.
    """
    from envs import evaluate

    mode = acting_mode or cfg.resolved_acting_mode()
    per_target, actions = {}, None
    was_training = model.training
    for i, target in enumerate(targets):
        policy = acting_policy(model, cfg, target, mode, record_actions=record_actions and i == 0)
        res = evaluate(
            policy, store_info.env_id, n_episodes=episodes or cfg.eval_episodes,
            n_envs=n_envs or cfg.eval_envs, seed=cfg.eval_seed if seed is None else seed,
            score_reference=store_info.score_reference, max_steps=cfg.eval_max_steps,
            ref_min=store_info.ref_min, ref_max=store_info.ref_max, vector=cfg.eval_vector,
        )  # fmt: skip
        per_target[f"{target:g}"] = dict(res.to_dict(), target_return=float(target), acting_mode=mode)
        if i == 0 and record_actions and policy.actions_taken:
            actions = np.concatenate(policy.actions_taken)
    model.train(was_training)
    return Evaluation(per_target, actions)


def resolve_targets(spec: Sequence[float | str], env_id: str, data_max: float | None) -> tuple[float, ...]:
    """The evaluation targets as numbers: ``spec``'s numbers as given and ``"data_max"`` replaced by ``data_max``,
    the best episode return of the training data; an empty ``spec`` means DT's targets for ``env_id``.

    >>> resolve_targets([3600, "data_max"], "Hopper-v5", 3483.8)
    (3600.0, 3483.8)
    >>> resolve_targets([], "Walker2d-v5", None)
    (5000.0, 2500.0)
    """
    if not spec:
        if d4rl_env_key(env_id) not in DT_TARGETS:
            raise ValueError(
                f"no default target returns for env {env_id!r}: set them, e.g. --set target_returns=[3600,1800] or "
                f"--set target_returns=[{DATA_MAX}] (the best episode return in the data)"
            )
        return DT_TARGETS[d4rl_env_key(env_id)]
    if DATA_MAX in spec and data_max is None:
        raise ValueError(f"target {DATA_MAX!r} needs the training data's best episode return, which is not recorded "
                         "here (a checkpoint from before it was); give the target as a number")  # fmt: skip
    return tuple(float(data_max) if t == DATA_MAX else float(t) for t in spec)  # type: ignore[arg-type]
