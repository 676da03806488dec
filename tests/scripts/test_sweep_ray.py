"""scripts/sweep.py with real tiny `run_rl.py train` runs: as Ray tasks, resumed exactly as with the pool; and
rescored at other targets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("sweep", Path(__file__).resolve().parents[2] / "scripts" / "sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

TINY_RUN = [
    "dim=16", "depth=1", "context_len=4", "batch_size=8", "eval_max_steps=10", "eval_envs=1", "eval_episodes=1",
    "final_eval_episodes=1",
    "target_returns=[100]", "log_every=10", "checkpoint_every=2",
]  # fmt: skip


def sweep_argv(out: Path, dataset: str, engine: str, seeds: tuple[int, ...]) -> list[str]:
    """``sweep.py run`` over hopper-medium x mingru x ``seeds`` into ``out``, on ``engine``, with the tiny run."""
    argv = ["run", "--configs", "hopper-medium", "--backbones", "mingru", "--seeds", *map(str, seeds),
            "--out", str(out), "--engine", engine, "--no-check-data", "--set", f"dataset={dataset}"]  # fmt: skip
    return argv + [a for kv in TINY_RUN for a in ("--set", kv)]


def test_ray_engine_runs_two_tiny_runs_and_resumes(tmp_path: Path, d4rl_file) -> None:
    """Two real runs as Ray tasks on a local 2-CPU Ray; then a run cut short resumes, via Ray, and only it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        base = sweep_argv(tmp_path, f"d4rl:{d4rl_file.path}", "ray", (0, 1))
        sweep.main([*base, "--steps", "4"])
        for seed in (0, 1):
            res = json.loads((sweep.run_dir(tmp_path, "hopper-medium", "mingru", seed) / "results.json").read_text())
            assert res["steps"] == 4
        assert (tmp_path / "table.md").exists()
        # Seed 1 cut short after its checkpoint at step 4: the next sweep resumes it (and only it) to 6 steps.
        rd1 = sweep.run_dir(tmp_path, "hopper-medium", "mingru", 1)
        (rd1 / "results.json").unlink()
        log0 = (rd1.parent / "seed0.log").read_text()
        sweep.main([*base, "--steps", "6"])
        assert json.loads((rd1 / "results.json").read_text())["steps"] == 6
        evals = [json.loads(line) for line in (rd1 / "evals.jsonl").read_text().splitlines()]
        assert [e["step"] for e in evals] == [4, 6]  # resumed: a restart (--overwrite) would have only step 6
        assert (rd1.parent / "seed0.log").read_text() == log0  # finished runs are skipped
    finally:
        ray.shutdown()


@pytest.mark.parametrize("flag", [["--gpus-per-run", "0.5"], ["--address", "auto"], ["--cpus-per-run", "2"]])
def test_ray_options_need_the_ray_engine(tmp_path: Path, flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sweep.main(["run", "--configs", "hopper-medium", "--steps", "1", "--out", str(tmp_path), "--engine", "pool",
                    *flag])  # fmt: skip
    assert "are Ray options; add --engine ray" in capsys.readouterr().err


def test_pool_engine_still_runs_without_ray(tmp_path: Path, d4rl_file) -> None:
    sweep.main([*sweep_argv(tmp_path, f"d4rl:{d4rl_file.path}", "pool", (0,)), "--steps", "2"])
    assert (
        json.loads((sweep.run_dir(tmp_path, "hopper-medium", "mingru", 0) / "results.json").read_text())["steps"] == 2
    )


def test_rescore_evaluates_final_weights_at_the_data_max_and_tabulates(tmp_path: Path, d4rl_file) -> None:
    sweep.main([*sweep_argv(tmp_path, f"d4rl:{d4rl_file.path}", "pool", (0, 1)), "--steps", "2"])
    bounds = np.cumsum([0, *d4rl_file.lengths])
    rewards = d4rl_file.arrays["rewards"].astype(np.float64)
    best = max(rewards[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    sweep.main(["rescore", "--out", str(tmp_path), "--targets", "data_max", "50"])
    runs = [sweep.run_dir(tmp_path, "hopper-medium", "mingru", seed) for seed in (0, 1)]
    last, rescored = [], []
    for rd in runs:
        res = json.loads((rd / "evals" / "rescore-data_max_50" / "results.json").read_text())
        first, second = res["per_target"].values()
        assert first["target_return"] == pytest.approx(best, rel=1e-5) and second["target_return"] == 50.0
        assert res["episodes"] == 1  # the run's final_eval_episodes
        last.append(json.loads((rd / "results.json").read_text())["normalized_score_mean"])
        rescored.append(res["normalized_score_mean"])
    table = json.loads((tmp_path / "rescore-data_max_50.json").read_text())
    assert [r["rescored"] for r in table["runs"]] == rescored
    (group,) = table["summary"]  # one agent, one dataset: a single average row
    assert group["datasets"] == ["hopper-medium"]
    assert group["agents"]["mingru"]["average"] == pytest.approx([np.mean(last), np.mean(rescored)])
    md = (tmp_path / "rescore-data_max_50.md").read_text()
    assert f"| 100 → {best:g} |" in md  # the run's target (TINY_RUN's) → the data's best return
    assert f"{np.mean(last):.1f} ± {np.std(last):.1f} → {np.mean(rescored):.1f} ± {np.std(rescored):.1f} (n=2)" in md
    stamp = (runs[0] / "evals" / "rescore-data_max_50" / "results.json").stat().st_mtime_ns
    assert sweep.rescore_runs(tmp_path, ["data_max", "50"], "data_max_50") == []  # done once, kept
    assert (runs[0] / "evals" / "rescore-data_max_50" / "results.json").stat().st_mtime_ns == stamp
    (tmp_path / "rescore-data_max_50.md").unlink()
    sweep.main(["rescore", "--out", str(tmp_path), "--targets", "data_max", "50", "--table-only"])
    assert (tmp_path / "rescore-data_max_50.md").read_text() == md
    sweep.main(["table", "--out", str(tmp_path), "--no-check-data"])  # the evals/ folders stay out of the main table
    assert "(n=2)" in (tmp_path / "table.md").read_text()
