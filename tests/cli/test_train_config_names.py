"""run_rl.py train --config NAME: a bare name means configs/NAME.yaml; `--config dt` is DT as Chen et al. ran it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import run_rl
from agents.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]

#: DT's D4RL gym settings (kzl/decision-transformer gym/experiment.py): what `--config dt` must give.
DT = {"backbone": "transformer", "layout": "interleaved", "lr": 1e-4, "warmup_steps": 10_000, "batch_size": 64,
      "context_len": 20, "dropout": 0.1, "weight_decay": 1e-4, "grad_clip": 0.25, "dim": 128, "depth": 3,
      "n_heads": 1}  # fmt: skip


def resolve(argv: list[str]) -> TrainConfig:
    return run_rl.resolve_train_config(run_rl.parse_args(["train", *argv]))


def test_config_dt_resolves_to_dt_settings() -> None:
    cfg = resolve(["--config", "dt"])
    assert {k: getattr(cfg, k) for k in DT} == DT
    assert cfg.acting_mode == "window" and cfg.resolved_acting_mode() == "window"


def test_config_dt_equals_the_spelled_out_flags() -> None:
    flags = resolve(["--backbone", "transformer", "--layout", "interleaved", "--lr", "0.0001", "--warmup-steps",
                     "10000"])  # fmt: skip
    named = resolve(["--config", "dt"])
    assert named.resolved_acting_mode() == flags.resolved_acting_mode() == "window"
    assert dataclasses.replace(named, acting_mode="auto") == flags


def test_config_names_combine_in_order_and_paths_still_work(tmp_path: Path) -> None:
    cfg = resolve(["--config", "dt", "--config", "hopper-medium", "--seed", "2"])
    assert cfg.backbone == "transformer" and cfg.dataset == "minari:minrnn/hopper/medium-v0" and cfg.seed == 2
    own = tmp_path / "dt.yaml"  # an existing path wins over the shipped name
    own.write_text("backbone: minlstm\n")
    assert resolve(["--config", str(own)]).backbone == "minlstm"
    assert resolve(["--config", str(ROOT / "configs" / "dt.yaml")]).backbone == "transformer"


def test_unknown_config_name_lists_the_shipped_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = run_rl.main(["train", "--config", "dtt", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "config file 'dtt' not found" in err and "(did you mean 'dt'?)" in err
    assert "shipped configs: " in err and "dt, " in err and "hopper-medium" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    code = run_rl.main(["train", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r")])
    assert code == 2 and "missing.yaml' not found" in capsys.readouterr().err


def test_flags_start_from_the_files_and_set_has_the_last_word(tmp_path: Path) -> None:
    """tyro parses the flags onto the config the files give: a boolean a file sets stays unless a flag says otherwise,
    and --set wins over a flag for the same key, the checks seeing the values as they end up."""
    own = tmp_path / "quiet.yaml"
    own.write_text(f"base: {ROOT / 'configs' / 'dt.yaml'}\nprogress: false\n")
    cfg = resolve(["--config", str(own), "--lr", "0.5", "--set", "lr=0.01", "--target-returns", "3600", "data_max"])
    assert (cfg.backbone, cfg.progress, cfg.lr) == ("transformer", False, 0.01)
    assert cfg.target_returns == (3600.0, "data_max")
    assert resolve(["--config", str(own), "--progress"]).progress is True
    assert resolve(["--config", str(own), "--set", "context-len=40"]).context_len == 40
    cfg = resolve(["--config", "cpu-budget", "--layout", "interleaved", "--set", "rtg_embed=joint"])
    assert (cfg.layout, cfg.rtg_embed) == ("interleaved", "joint")
