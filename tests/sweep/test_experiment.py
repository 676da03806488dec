"""sweep.experiment: an experiment YAML into the configs each run trains on, layered as `run_rl.py train` layers
them (read back through run_rl's own config resolution), and clear errors for what cannot be run."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

import run_rl
from sweep import launch
from sweep.experiment import ROOT, load_experiment, parse_experiment


def _config(exp, agent: str, dataset: str = "hopper-medium"):
    cmd = launch.train_command(exp, exp.agent(agent), dataset, 0)
    return cmd, run_rl.resolve_train_config(run_rl.parse_args(cmd[cmd.index("train") :]))


def test_equal_time_dt_keeps_dts_recipe_and_shares_the_budget():
    """experiments/equal-time.yaml: dt is DT as published (its tokens, acting and schedule) on the shared 4-CPU-minute
    budget; the other agents take the CPU recipe over the dataset's config, and their own overrides last."""
    exp = load_experiment(ROOT / "experiments" / "equal-time.yaml")
    cmd, dt = _config(exp, "dt")
    configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    assert configs == [str(ROOT / "configs" / "dt.yaml"), str(ROOT / "configs" / "hopper-medium.yaml")]
    assert (dt.backbone, dt.layout, dt.rtg_embed, dt.acting_mode) == ("transformer", "interleaved", "joint", "window")
    assert (dt.lr, dt.warmup_steps, dt.lr_schedule) == (1e-4, 10_000, "constant")
    assert (dt.time_budget_min, dt.budget_clock, dt.dataset) == (4, "cpu", "minari:minrnn/hopper/medium-v0")
    cmd, mingru = _config(exp, "mingru")
    configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    assert configs == [str(ROOT / "configs" / "hopper-medium.yaml"), str(ROOT / "configs" / "cpu-budget.yaml")]
    assert (mingru.layout, mingru.rtg_embed, mingru.lr_schedule) == ("stacked", "layernorm", "wsd")  # the recipe
    assert mingru.time_budget_min == 4 and tuple(mingru.eval_at_min) == (0.25, 0.5)
    _, dt_cpu = _config(exp, "dt-cpu")
    assert (dt_cpu.layout, dt_cpu.rtg_embed, dt_cpu.lr, dt_cpu.warmup_steps) == ("interleaved", "joint", 6e-4, 100)
    assert (mingru.lr, mingru.warmup_steps) == (3e-4, 300)  # dt-cpu's own set wins over the recipe it shares


def test_equal_time_dt_cpu_is_the_probes_winner():
    """experiments/dtcpu-probe.yaml's winner ran as dt-cpu's seeds 0-2 on the probe's datasets: the same config."""
    equal_time = load_experiment(ROOT / "experiments" / "equal-time.yaml")
    probe = load_experiment(ROOT / "experiments" / "dtcpu-probe.yaml")
    for dataset in probe.datasets:
        _, winner = _config(probe, "dt-cpu-lr6e-4-wu100", dataset)
        _, dt_cpu = _config(equal_time, "dt-cpu", dataset)
        assert dataclasses.asdict(dt_cpu) == dataclasses.asdict(winner)


def test_equal_updates_reuses_dt_cpus_equal_time_runs_and_trains_the_others_to_a_fixed_count():
    """experiments/equal-updates.yaml says dt-cpu's runs there are its equal-time runs: the two experiments must
    resolve dt-cpu to the same config. The others train 1,250 steps with no time budget, so the schedule's decay
    runs over the steps and every run ends at exactly that count."""
    equal_time = load_experiment(ROOT / "experiments" / "equal-time.yaml")
    equal_updates = load_experiment(ROOT / "experiments" / "equal-updates.yaml")
    for dataset in ("hopper-medium", "halfcheetah-medium-expert"):
        _, timed = _config(equal_time, "dt-cpu", dataset)
        _, reused = _config(equal_updates, "dt-cpu", dataset)
        assert dataclasses.asdict(reused) == dataclasses.asdict(timed)
    for agent in ("attention", "mingru", "minlstm"):
        _, timed = _config(equal_time, agent)
        _, counted = _config(equal_updates, agent)
        assert (counted.steps, counted.time_budget_min, counted.lr_schedule) == (1250, 0, "wsd")
        assert (counted.backbone, counted.layout, counted.lr) == (timed.backbone, timed.layout, timed.lr)


def test_short_recipe_probe_reuses_equal_updates_runs_and_changes_only_the_warm_up_and_rate():
    """experiments/short-recipe-probe.yaml links the equal-updates runs of attention, minGRU and minLSTM as its
    own-recipe agents, so they must resolve to the same configs; each -lr6e-4-wu100 agent differs from its own-recipe
    twin in the learning rate and warm-up alone, which are dt-cpu's."""
    probe = load_experiment(ROOT / "experiments" / "short-recipe-probe.yaml")
    equal_updates = load_experiment(ROOT / "experiments" / "equal-updates.yaml")
    _, dt_cpu = _config(equal_updates, "dt-cpu")
    for dataset in probe.datasets:
        for agent in ("attention", "mingru", "minlstm"):
            _, own = _config(probe, agent, dataset)
            _, linked = _config(equal_updates, agent, dataset)
            assert dataclasses.asdict(own) == dataclasses.asdict(linked)
            _, short = _config(probe, f"{agent}-lr6e-4-wu100", dataset)
            assert (short.lr, short.warmup_steps) == (dt_cpu.lr, dt_cpu.warmup_steps) != (own.lr, own.warmup_steps)
            short = dataclasses.replace(short, lr=own.lr, warmup_steps=own.warmup_steps)
            assert dataclasses.asdict(short) == dataclasses.asdict(own)


def test_an_agents_own_configs_and_set_go_last(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("lr: 0.002\nwarmup_steps: 7\n")
    raw = {"name": "x", "out": str(tmp_path), "datasets": ["walker2d-medium"], "set": {"lr": 0.005, "steps": 10},
           "agents": {"a": {"backbone": "minlstm", "configs": ["cpu-budget", str(own)], "set": {"lr": 0.001}},
                      "b": {"backbone": "minlstm", "configs": [str(own)]}}}  # fmt: skip
    exp = parse_experiment(raw)
    _, a = _config(exp, "a", "walker2d-medium")
    _, b = _config(exp, "b", "walker2d-medium")
    assert (a.lr, a.warmup_steps, a.backbone) == (0.001, 7, "minlstm")  # agent set > experiment set > configs
    assert (b.lr, b.warmup_steps) == (0.005, 7)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engine": "pool", "ray": {"gpus_per_run": 0.5}}, "need engine: ray"),
        ({"engine": "pool", "ray": {"address": "auto"}}, "need engine: ray"),
        ({"engine": "slurm"}, "engine must be auto, ray or pool"),
        ({"jobs": 0}, "jobs must be >= 1"),
        ({"datasets": ["hopper-nothing"]}, r"no config for dataset\(s\) \['hopper-nothing'\]"),
        ({"agents": {"a": {"backbone": "mingru", "configs": ["no-such-recipe"]}}}, "names config 'no-such-recipe'"),
        ({"agents": {"a": {"configs": ["cpu-budget"]}}}, "needs a mapping with at least 'backbone'"),
        ({"agents": {"a": {"backbone": "mingru", "recipe": "x"}}}, r"unknown key\(s\) \['recipe'\]"),
        ({"seed": [0]}, r"unknown key\(s\) \['seed'\]"),
        ({"set": ["lr=1"]}, "set must be a mapping"),
    ],
)
def test_what_cannot_run_is_refused_with_the_reason(tmp_path, change, message):
    raw = {"name": "x", "out": str(tmp_path), "datasets": ["hopper-medium"], "agents": {"a": {"backbone": "mingru"}}}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(raw | change))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_experiment(path)


def test_a_missing_experiment_file_names_the_examples(tmp_path):
    with pytest.raises(FileNotFoundError, match="see experiments/ for examples"):
        load_experiment(tmp_path / "none.yaml")
