"""Minimal recurrent networks (minGRU, minLSTM; Feng et al. 2024) with fast scans, residual stacks, baselines."""

from minrnn.blocks import BACKBONES, ResidualBlock, Stack, build_backbone
from minrnn.layers import MinGRU, MinLSTM
from minrnn.scan import BACKENDS, scan

__all__ = ["BACKBONES", "BACKENDS", "MinGRU", "MinLSTM", "ResidualBlock", "Stack", "build_backbone", "scan"]
