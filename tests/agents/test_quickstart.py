"""run_rl.py quickstart: collects its dataset once, remakes it when the shipped policy changed, never reuses a run."""

from __future__ import annotations

import json

import pytest

import agents.quickstart as quickstart
from agents.behaviour.recipes import POLICY_DIR

FAST = ["steps=5", "eval_every=0", "eval_episodes=1", "final_eval_episodes=1", "eval_envs=1", "eval_max_steps=20",
        "checkpoint_every=0", "histogram_every=0", "batch_size=4"]  # fmt: skip


@pytest.mark.skipif(not (POLICY_DIR / "index.json").exists(), reason="no shipped policies")
def test_quickstart_collects_once_and_remakes_stale_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    monkeypatch.setattr(quickstart, "DATASET_SIZE", 300)
    first = quickstart.run_quickstart(tmp_path / "runs" / "qs", FAST)
    assert "collecting" in capsys.readouterr().out
    meta_path = tmp_path / "datasets" / "minrnn/hopper/medium-small-v0/data/metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["total_steps"] == 300 and meta["recipe"]["policy"]["file"] == "hopper_medium.safetensors"

    second = quickstart.run_quickstart(tmp_path / "runs" / "qs", FAST)
    assert "using the existing dataset" in capsys.readouterr().out
    assert first["run_dir"] != second["run_dir"] and second["run_dir"].endswith("qs-2")

    meta["recipe"]["policy"]["sha256"] = "0" * 64  # as if made from weights shipped earlier
    meta_path.write_text(json.dumps(meta))
    quickstart.run_quickstart(tmp_path / "runs" / "qs", FAST)
    out = capsys.readouterr().out
    assert "out of date" in out and "collecting it again" in out
    assert json.loads(meta_path.read_text())["recipe"]["policy"]["sha256"] != "0" * 64
