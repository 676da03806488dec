"""Offline datasets (Minari, D4RL HDF5), trajectory batching, D4RL scores, vectorised evaluation."""

from envs.datasets import load_dataset
from envs.evaluate import EvalResult, Policy, evaluate
from envs.listing import format_table, list_local_datasets
from envs.make import make_env, resolve_env_id
from envs.scores import D4RL_REF, normalized_score
from envs.store import Episode, StoreInfo, TrajectoryStore

__all__ = [
    "D4RL_REF",
    "Episode",
    "EvalResult",
    "Policy",
    "StoreInfo",
    "TrajectoryStore",
    "evaluate",
    "format_table",
    "list_local_datasets",
    "load_dataset",
    "make_env",
    "normalized_score",
    "resolve_env_id",
]
