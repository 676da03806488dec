"""sweep.launch and `python -m sweep run|rescore`: real tiny `run_rl.py train` runs on the pool and on Ray, resumed
where a sweep was cut short, rescored at other targets, collected; dry runs; runs on rebuilt data set aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fakes import fake_run

from sweep import launch, records
from sweep.__main__ import main
from sweep.experiment import load_experiment
from sweep.launch import run_dir

#: A run that takes seconds: a tiny network, one short evaluation episode, a checkpoint every two updates.
TINY_RUN = {
    "dim": 16, "depth": 1, "context_len": 4, "batch_size": 8, "eval_max_steps": 10, "eval_envs": 1,
    "eval_episodes": 1, "final_eval_episodes": 1, "target_returns": [100], "log_every": 10, "checkpoint_every": 2,
}  # fmt: skip


def tiny_experiment(out: Path, dataset: str, engine: str, seeds: list[int], steps: int, **extra) -> Path:
    """experiments/<name>.yaml for hopper-medium x mingru x ``seeds`` on the tiny run, trained on ``dataset``;
    ``extra`` keys go into the experiment's ``set``."""
    raw = {"name": "tiny", "out": str(out / "runs"), "datasets": ["hopper-medium"], "seeds": seeds, "steps": steps,
           "engine": engine, "set": {"dataset": dataset, **TINY_RUN, **extra},
           "agents": {"mingru": {"backbone": "mingru"}}}  # fmt: skip
    path = out / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _result(out: Path, seed: int) -> dict:
    return json.loads((run_dir(out / "runs", "hopper-medium", "mingru", seed) / "results.json").read_text())


def test_pool_trains_collects_and_rescores_at_the_data_max(tmp_path, d4rl_file, capsys):
    """Two real runs on the local pool (on a CPU time budget they do not reach), collected into the tidy table;
    then their final weights evaluated again at the data's best return and 50, kept once done."""
    exp = tiny_experiment(tmp_path, f"d4rl:{d4rl_file.path}", "pool", [0, 1], 2, time_budget_min=30,
                          budget_clock="cpu")  # fmt: skip
    main(["run", str(exp)])
    assert "2 runs, 0 already finished, 2 to go (pool)" in capsys.readouterr().out
    assert [_result(tmp_path, s)["steps"] for s in (0, 1)] == [2, 2]
    df, meta = records.read_table(tmp_path / "runs" / "tiny.csv")
    final = df[df["eval"] == "final"]
    assert final["seed"].tolist() == [0, 1] and final["updates"].tolist() == [2, 2] and (final["clock"] == "cpu").all()
    assert (final["train_minutes"] > 0).all() and meta["name"] == "tiny"

    bounds = np.cumsum([0, *d4rl_file.lengths])
    rewards = d4rl_file.arrays["rewards"].astype(np.float64)
    best = max(rewards[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    runs = tmp_path / "runs"
    main(["rescore", str(runs), "--targets", "data_max", "50"])
    for seed in (0, 1):
        res = json.loads((run_dir(runs, "hopper-medium", "mingru", seed) / "evals" / "rescore-data_max_50" /
                          "results.json").read_text())  # fmt: skip
        first, second = res["per_target"].values()
        assert first["target_return"] == pytest.approx(best, rel=1e-5) and second["target_return"] == 50.0
        assert res["episodes"] == 1  # the run's final_eval_episodes
    stamp = (run_dir(runs, "hopper-medium", "mingru", 0) / "evals" / "rescore-data_max_50").stat().st_mtime_ns
    assert launch.rescore_runs(runs, ["data_max", "50"], "data_max_50") == []  # done once, kept
    assert (run_dir(runs, "hopper-medium", "mingru", 0) / "evals" / "rescore-data_max_50").stat().st_mtime_ns == stamp
    rescored, _ = records.collect(runs, "tiny")
    again = rescored[rescored["eval"] == "rescore-data_max_50"]
    assert again["target"].tolist() == pytest.approx([best, 50.0] * 2, rel=1e-5) and again["final"].all()


def test_ray_trains_and_resumes_only_the_run_cut_short(tmp_path, d4rl_file):
    """Two real runs as Ray tasks on a local 2-CPU Ray; then a run cut short after its checkpoint resumes, via Ray,
    and only it (the finished one is skipped)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dataset = f"d4rl:{d4rl_file.path}"
        main(["run", str(tiny_experiment(tmp_path, dataset, "ray", [0, 1], 4)), "--no-check-data"])
        assert [_result(tmp_path, s)["steps"] for s in (0, 1)] == [4, 4]
        rd1 = run_dir(tmp_path / "runs", "hopper-medium", "mingru", 1)
        (rd1 / "results.json").unlink()
        log0 = (rd1.parent / "seed0.log").read_text()
        main(["run", str(tiny_experiment(tmp_path, dataset, "ray", [0, 1], 6)), "--no-check-data"])
        assert _result(tmp_path, 1)["steps"] == 6 and _result(tmp_path, 0)["steps"] == 4
        evals = [json.loads(line) for line in (rd1 / "evals.jsonl").read_text().splitlines()]
        assert [e["step"] for e in evals] == [4, 6]  # resumed: a restart (--overwrite) would have only step 6
        assert (rd1.parent / "seed0.log").read_text() == log0
        df, _ = records.read_table(tmp_path / "runs" / "tiny.csv")
        assert df.loc[df["eval"] == "final", "updates"].tolist() == [4, 6]
    finally:
        ray.shutdown()


def test_the_train_command_resumes_from_a_checkpoint_and_restarts_a_run_killed_before_one(tmp_path):
    exp = load_experiment(tiny_experiment(tmp_path, "d4rl:x.hdf5", "pool", [0], 100))
    agent = exp.agent("mingru")
    cmd = launch.train_command(exp, agent, "hopper-medium", 0)
    assert "--resume" not in cmd and "--overwrite" not in cmd
    assert cmd[cmd.index("--steps") + 1] == "100" and "threads=1" in cmd and "dim=16" in cmd
    rd = run_dir(exp.out, "hopper-medium", "mingru", 0)
    (rd / "tb").mkdir(parents=True)  # killed before its first checkpoint: nothing to resume, start it again
    killed = launch.train_command(exp, agent, "hopper-medium", 0)
    assert "--overwrite" in killed and "--resume" not in killed
    (rd / "checkpoints").mkdir()
    (rd / "checkpoints" / "latest").write_text("step_0000050")
    assert launch.train_command(exp, agent, "hopper-medium", 0)[-1] == "--resume"


def test_dry_run_prints_the_missing_runs_commands_and_runs_nothing(tmp_path, capsys):
    raw = yaml.safe_load(tiny_experiment(tmp_path, "d4rl:x.hdf5", "pool", [0, 1], 10).read_text())
    raw["agents"]["dt"] = {"backbone": "transformer", "base": ["dt"]}
    exp = tmp_path / "two.yaml"
    exp.write_text(yaml.safe_dump(raw, sort_keys=False))
    fake_run(tmp_path / "runs", "hopper-medium", "dt", 0, [10.0])  # finished: not run again
    main(["run", str(exp), "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    outs = [line.split("--out ")[1].split()[0].split("runs/")[1] for line in lines]
    assert outs == ["hopper-medium/mingru/seed0", "hopper-medium/mingru/seed1", "hopper-medium/dt/seed1"]
    assert all(" train " in line and "run_rl.py" in line for line in lines)
    assert sorted(p.name for p in (tmp_path / "runs" / "hopper-medium").iterdir()) == ["dt"]
    main(["run", str(exp), "--dry-run", "--agents", "dt", "--seeds", "0", "1"])  # a part of the matrix
    (line,) = capsys.readouterr().out.splitlines()
    assert "--out " in line and line.split("runs/")[-1].split()[0] == "hopper-medium/dt/seed1"
    with pytest.raises(SystemExit, match=r"--agents: \['attention'\] not in .*its agents: \['mingru', 'dt'\]"):
        main(["run", str(exp), "--dry-run", "--agents", "attention"])


def test_runs_on_rebuilt_data_are_set_aside_not_deleted(tmp_path):
    now = {"name": "minari:x/y/medium-v0", "episodes": 10, "transitions": 1000, "return_mean": 5.0, "fingerprint": "a"}
    summaries = {("mingru", 0): now, ("mingru", 1): {**now, "fingerprint": "b"},
                 ("minlstm", 0): {k: v for k, v in now.items() if k != "fingerprint"}}  # fmt: skip
    for (agent, seed), summary in summaries.items():
        rd = fake_run(tmp_path, "hopper-medium", agent, seed, [10.0, 20.0])
        (rd / "dataset.json").write_text(json.dumps(summary))
    log = tmp_path / "hopper-medium" / "mingru" / "seed1.log"
    log.write_text("training log")
    cells = launch.existing_cells(tmp_path)
    assert cells == [("hopper-medium", "mingru", 0), ("hopper-medium", "mingru", 1), ("hopper-medium", "minlstm", 0)]
    moved = launch.set_aside_stale(tmp_path, cells, {"hopper-medium": now})
    assert sorted(p.parent.parent.name + "/" + p.name.split("-")[0] for p in moved) == ["mingru/seed1", "minlstm/seed0"]
    assert all((p / "results.json").is_file() and p.parent.name == "stale" for p in moved)  # kept whole
    assert not log.exists() and (moved[0].parent / f"{moved[0].name}.log").read_text() == "training log"
    assert launch.existing_cells(tmp_path) == [("hopper-medium", "mingru", 0)]
    assert launch.set_aside_stale(tmp_path, launch.existing_cells(tmp_path), {"hopper-medium": now}) == []
    assert launch.existing_cells(tmp_path, ["walker2d-medium"]) == []
    df, _ = records.collect(tmp_path, "x")  # the table reads only current runs
    assert df[["agent", "seed"]].drop_duplicates().values.tolist() == [["mingru", 0]]


def test_the_ray_engine_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "ray_available", lambda: False)
    with pytest.raises(SystemExit, match=r'engine: ray needs Ray: pip install -e "\.\[ray\]"'):
        main(["run", str(tiny_experiment(tmp_path, "d4rl:x.hdf5", "ray", [0], 1)), "--no-check-data"])
