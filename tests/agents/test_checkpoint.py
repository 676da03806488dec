"""Checkpoints: exact round trip of actions, atomic pointers, and safe loading (no pickle, tamper detection)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from agents.config import TrainConfig
from agents.policy import DecisionPolicy
from agents.trainer import build_model, load_model


def _save_model(run: Path, backbone: str = "mingru", layout: str = "stacked", step: int = 3) -> torch.nn.Module:
    cfg = TrainConfig(backbone=backbone, layout=layout, dim=16, depth=1, dropout=0.0, context_len=4)
    torch.manual_seed(0)
    model = build_model(cfg, 11, 3, np.arange(11, dtype=np.float32), np.full(11, 2.0, np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4, 11), torch.zeros(2, 4, 3), torch.ones(2, 4), torch.arange(4).expand(2, 4))[
        0
    ].sum().backward()
    opt.step()
    meta = {"step": step, "config": cfg.to_dict(), "obs_dim": 11, "act_dim": 3, "targets": [10.0]}
    save_checkpoint(run, f"step_{step:07d}", model.state_dict(), meta, opt.state_dict(), torch.get_rng_state())
    return model


def _acts(model: torch.nn.Module, mode: str) -> np.ndarray:
    pol = DecisionPolicy(model, 10.0, mode, context_len=4)
    pol.reset(2)
    rng = np.random.default_rng(0)
    out, done = [], np.ones(2, bool)
    for _ in range(6):
        out.append(pol.act(rng.standard_normal((2, 11)), rng.random(2), done))
        done = np.zeros(2, bool)
    return np.stack(out)


@pytest.mark.parametrize("mode", ["window", "recurrent"])
def test_round_trip_reproduces_actions_exactly(tmp_path: Path, mode: str) -> None:
    model = _save_model(tmp_path)
    loaded, cfg, meta = load_model(tmp_path)
    assert meta["step"] == 3 and cfg.backbone == "mingru"
    torch.testing.assert_close(loaded.state_mean, torch.arange(11, dtype=torch.float32))
    np.testing.assert_array_equal(_acts(model.eval(), mode), _acts(loaded, mode))


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    _save_model(tmp_path)
    ckpt = load_checkpoint(tmp_path)
    tensors, meta = optimizer_to_tensors(ckpt.optimizer)
    back = optimizer_from_tensors(tensors, json.loads(json.dumps(meta)))
    assert back["param_groups"] == ckpt.optimizer["param_groups"]
    assert set(back["state"]) == set(ckpt.optimizer["state"])
    assert ckpt.torch_rng is not None and ckpt.torch_rng.dtype == torch.uint8


def test_pointer_names_newest_and_old_folders_are_pruned(tmp_path: Path) -> None:
    _save_model(tmp_path, step=1)
    _save_model(tmp_path, step=2)
    root = tmp_path / "checkpoints"
    assert (root / "latest").read_text().strip() == "step_0000002"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step_0000002"]
    (root / ".tmp-step_0000003-dead").mkdir()  # a save killed half-way leaves only a temp folder
    assert find_checkpoint(tmp_path).name == "step_0000002"


def test_malicious_pickle_is_never_loaded(tmp_path: Path) -> None:
    """A pickle dropped into the checkpoint folder (under any name) is ignored: no code runs."""
    _save_model(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # runs on unpickling
            return (Path.write_text, (marker, "code ran"))

    folder = find_checkpoint(tmp_path)
    for name in ("optimizer.pt", "model.pt", "state.pkl", "trainer_state.pt"):
        (folder / name).write_bytes(pickle.dumps(Evil()))
    load_model(tmp_path)
    load_checkpoint(tmp_path)
    assert not marker.exists()


def test_tampered_or_truncated_files_give_clear_errors(tmp_path: Path) -> None:
    _save_model(tmp_path)
    folder = find_checkpoint(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="does not match the sha256 recorded in state.json"):
        load_checkpoint(tmp_path)
    weights.write_bytes(pickle.dumps({"a": 1}))  # a pickle pretending to be safetensors
    with pytest.raises(ValueError, match="truncated or was modified"):
        load_checkpoint(tmp_path)
    (folder / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="state.json is corrupt"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no 'latest' checkpoint under"):
        load_checkpoint(tmp_path)


def test_wrong_backbone_weights_are_rejected(tmp_path: Path) -> None:
    _save_model(tmp_path, backbone="mingru")
    folder = find_checkpoint(tmp_path)
    meta = json.loads((folder / "state.json").read_text())
    meta["config"]["backbone"] = "transformer"  # the weights stay minGRU's
    (folder / "state.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not fit the model"):
        load_model(tmp_path)


def test_named_rng_states_round_trip(tmp_path: Path) -> None:
    """Per-rank RNG states (a dict) are stored in rng.safetensors and come back by name."""
    states = {"torch_cpu": torch.get_rng_state(), "torch_cpu.1": torch.arange(5, dtype=torch.uint8)}
    save_checkpoint(tmp_path, "step_0000001", {"w": torch.ones(2)}, {"step": 1}, torch_rng=states)
    ckpt = load_checkpoint(tmp_path)
    assert set(ckpt.rng) == {"torch_cpu", "torch_cpu.1"} and torch.equal(ckpt.torch_rng, states["torch_cpu"])
    assert torch.equal(ckpt.rng["torch_cpu.1"], states["torch_cpu.1"])
