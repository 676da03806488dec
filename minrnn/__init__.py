"""Minimal recurrent networks (minGRU, minLSTM) with fast scans, residual stacks and baselines."""
