"""Decision agents over minGRU, minLSTM, GRU, LSTM and transformer backbones: model, training, acting.

``agents.load_agent(run_dir)`` is the Python entry point for a trained agent (agents/agent.py). It is imported on
first use, so that ``import agents.config`` (the command line's ``--help``) does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Agent", "load_agent"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from agents import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
