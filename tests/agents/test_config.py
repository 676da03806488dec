"""TrainConfig: YAML loading, overrides, type checks and validation messages."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from agents.config import TrainConfig, config_from_dict, load_config, load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_dt() -> None:
    cfg = TrainConfig()
    assert (cfg.context_len, cfg.dim, cfg.depth, cfg.dropout) == (20, 128, 3, 0.1)
    assert (cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.grad_clip, cfg.batch_size) == (1e-4, 1e-4, 10_000, 0.25, 64)
    assert cfg.rtg_scale == 1000.0


@pytest.mark.parametrize("path", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_hold_only_what_differs(path: str) -> None:
    """The defaults have one source, TrainConfig: a shipped YAML file never restates one."""
    defaults = TrainConfig().to_dict()
    own = load_yaml(CONFIGS / path)
    typed = config_from_dict(own).to_dict()  # the file as a whole: some keys only validate with others
    restated = {k: v for k, v in own.items() if typed[k] == defaults[k]}
    assert restated == {}, f"{path} restates defaults: {restated}"


@pytest.mark.parametrize("path", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_loads(path: str) -> None:
    cfg = load_config(CONFIGS / path)
    env, _, level = path.removesuffix(".yaml").partition("-")
    if env in ("hopper", "halfcheetah", "walker2d"):  # the per-dataset configs; base, quickstart, ... are not
        assert cfg.dataset == f"minari:minrnn/{env}/{level}-v0"
        assert len(cfg.target_returns) == 2


def test_overrides_are_typed() -> None:
    cfg = load_config(None, ["lr=3e-4", "context_len=40", "bf16=true", "target_returns=[3600, 1800]", "seed=7"])
    assert (cfg.lr, cfg.context_len, cfg.bf16, cfg.target_returns, cfg.seed) == (3e-4, 40, True, (3600.0, 1800.0), 7)
    assert load_config(None, {"target_returns": 5000}).target_returns == (5000.0,)
    assert load_config(None, ["target_returns=[data_max, 3600]"]).target_returns == ("data_max", 3600.0)


def test_yaml_base_chain(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("dim: 64\ndepth: 2\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ndepth: 4\nlr: 3e-4\n")
    assert load_yaml(tmp_path / "b.yaml") == {"dim": 64, "depth": 4, "lr": "3e-4"}
    cfg = load_config(tmp_path / "b.yaml", ["dim=32"])
    assert (cfg.dim, cfg.depth, cfg.lr) == (32, 4, 3e-4)


def test_unknown_key_suggests_and_lists() -> None:
    with pytest.raises(
        ValueError, match=r"unknown config key 'contxt_len' \(did you mean 'context_len'\?\); valid keys: .*lr"
    ):
        load_config(None, ["contxt_len=5"])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("context_len=0", r"context_len must be >= 1, got 0"),
        ("context_len=-3", r"context_len must be >= 1, got -3"),
        ("batch_size=0", r"batch_size must be >= 1, got 0"),
        ("lr=0", r"lr must be > 0, got 0.0"),
        ("lr=-1e-3", r"lr must be > 0"),
        ("context_len=abc", r"config key 'context_len' expects an integer, got 'abc'"),
        ("context_len=2.5", r"expects an integer, got 2.5"),
        ("bf16=maybe", r"config key 'bf16' expects true or false"),
        (
            "backbone=mingur",
            r"backbone='mingur' is not valid \(did you mean 'mingru'\?\); use one of \['mingru', 'minlstm'",
        ),
        ("backbone=mamba", r"backbone='mamba' is not valid"),
        ("dropout=1.0", r"dropout must be in \[0, 1\)"),
        ("eval_vector=asynk", r"eval_vector='asynk' is not valid \(did you mean 'async'\?\)"),
        ("scan_backend=triton_chunk", r"scan_backend='triton_chunk' is not valid \(did you mean 'triton_chunked'\?\)"),
        ("cuda_graphs=maybe", r"cuda_graphs='maybe' is not valid; use one of \['auto', 'on', 'off'\]"),
        ("backbone_init=xavier", r"backbone_init='xavier' is not valid; use one of \['auto', 'default', 'gpt2'\]"),
        ("lr_schedule=linear", r"lr_schedule='linear' is not valid; use one of \['constant', 'cosine', 'wsd'\]"),
        ("decay_fraction=0", r"decay_fraction must be in \(0, 1\], got 0.0"),
        ("loss_reduction=avg", r"loss_reduction='avg' is not valid; use one of \['mean', 'sum'\]"),
        ("min_lr_ratio=1.5", r"min_lr_ratio must be in \[0, 1\], got 1.5"),
        ("target_returns=abc", r"expects a list of numbers"),
        ("target_returns=[datamax]", r"expects a list of numbers or 'data_max', e.g. \[3600, 1800\] or \[data_max\]"),
        ("key_without_value", r"must look like key=value"),
        ("rtg_embed=sum", r"rtg_embed='sum' is not valid; use one of \['joint', 'layernorm', 'balanced'\]"),
        ("rtg_embed=balanced", r"rtg_embed='balanced' needs layout 'stacked'"),
        ("rtg_embed=layernorm", r"rtg_embed='layernorm' needs layout 'stacked'"),
        ("forget_bias=1", r"forget_bias=1.0 only applies to backbone 'minlstm' \(got 'mingru'\)"),
    ],
)
def test_bad_values(override: str, match: str) -> None:
    """The table of bad config values (the CLI's paths to them: tests/cli/test_errors.py)."""
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])


def test_recurrent_acting_needs_recurrent_backbone() -> None:
    with pytest.raises(ValueError, match="acting_mode='recurrent' needs a recurrent backbone"):
        load_config(None, ["backbone=transformer", "acting_mode=recurrent"])
    with pytest.raises(ValueError, match="train_mode='burn_in' needs a recurrent backbone"):
        load_config(None, ["backbone=transformer", "train_mode=burn_in"])


def test_forget_bias_refuses_an_init_that_zeroes_it() -> None:
    with pytest.raises(ValueError, match="backbone_init='gpt2' zeroes every bias"):
        load_config(None, ["backbone=minlstm", "forget_bias=1", "backbone_init=gpt2"])


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file .* not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(tmp_path / "bad.yaml")


def test_to_dict_round_trip() -> None:
    cfg = load_config(None, ["target_returns=[1, 2]", "backbone=lstm"])
    assert config_from_dict(cfg.to_dict()) == cfg
    cfg = load_config(None, ["target_returns=[data_max, 2]"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_cuda_graphs_key() -> None:
    from agents.graphs import MODES, graph_mode, use_graphs

    assert TrainConfig().cuda_graphs == "auto"
    assert load_config(None, ["cuda_graphs=off"]).cuda_graphs == "off"
    with pytest.raises(ValueError, match=r"cuda_graphs='on' and compile=True both remove launch overhead; pick one"):
        load_config(None, ["cuda_graphs=on", "compile=true"])
    import agents.config

    assert agents.config.CUDA_GRAPH_MODES == MODES  # the config validates the values agents/graphs.py accepts
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = load_config(None, [])
    assert graph_mode(auto) == "auto" and not use_graphs(graph_mode(auto), cpu)
    assert use_graphs(graph_mode(auto), cuda, "mingru", ("mingru",))
    assert graph_mode(load_config(None, ["compile=true"])) == "off"
    assert graph_mode(auto, distributed=True) == "off" and auto.cuda_graphs == "auto"
    with pytest.raises(ValueError, match=r"cuda_graphs='on' is not supported in a multi-process \(torchrun/DDP\) run"):
        graph_mode(load_config(None, ["cuda_graphs=on"]), distributed=True)
    with pytest.raises(ValueError, match=r"cuda_graphs='on' needs a model on CUDA, got device cpu"):
        use_graphs(graph_mode(load_config(None, ["cuda_graphs=on"])), cpu)


def test_values_are_typed_as_their_fields_read() -> None:
    """YAML, JSON and --set text meet one set of dacite hooks: a whole float counts, one number is a list, a choice
    keeps its text (YAML 1.1 would read `off` as false), and a boolean is no count."""
    cfg = load_config(None, {"steps": 1e5, "eval_at_min": 0.5, "lr": 1})
    assert (cfg.steps, cfg.eval_at_min, cfg.lr) == (100_000, (0.5,), 1.0) and isinstance(cfg.steps, int)
    assert load_config(None, ["cuda_graphs=off", "env=", "device=cuda:1"]).cuda_graphs == "off"
    with pytest.raises(ValueError, match=r"config key 'steps' expects an integer, got True"):
        load_config(None, {"steps": True})
    with pytest.raises(ValueError, match=r"config key 'dropout' expects a number, got True"):
        load_config(None, {"dropout": True})


def test_every_choice_field_is_checked_however_the_config_is_made() -> None:
    """One loop in __post_init__ checks every Literal field, for a config made in code as for a loaded one."""
    hints = typing.get_type_hints(TrainConfig)
    choices = {k: typing.get_args(t) for k, t in hints.items() if typing.get_origin(t) is typing.Literal}
    assert {"backbone", "layout", "train_mode", "cuda_graphs", "budget_clock", "activation"} <= set(choices)
    for key, values in choices.items():
        with pytest.raises(ValueError, match=rf"{key}='{values[0]}x' is not valid \(did you mean '{values[0]}'\?\)"):
            TrainConfig(**{key: values[0] + "x"})
