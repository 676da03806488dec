"""scripts/sweep.py: the results table from finished runs (mean ± std over seeds, last and best) and its plots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("sweep", Path(__file__).resolve().parents[2] / "scripts" / "sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def _fake_run(out: Path, config: str, backbone: str, seed: int, curve: list[float]) -> None:
    rd = sweep.run_dir(out, config, backbone, seed)
    rd.mkdir(parents=True)
    evals = [{"step": 1000 * (i + 1), "score": s} for i, s in enumerate(curve)]
    (rd / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    res = {
        "normalized_score_mean": curve[-1],
        "return_mean": 10 * curve[-1],
        "steps": 1000 * len(curve),
        "wall_time_s": 60.0,
        "score_reference": "d4rl",
        "acting_mode": "window",
        "layout": "stacked",
        "train_mode": "window",
    }
    (rd / "results.json").write_text(json.dumps(res))
    env = config.split("-")[0]
    data_return = {"hopper": 1617.0, "walker2d": 2297.0}[env]  # D4RL scores 50.3 and 50.0, written out below
    (rd / "dataset.json").write_text(json.dumps({"env_id": env, "return_mean": data_return, "score_reference": "d4rl"}))


def test_table_means_and_stds_over_seeds(tmp_path):
    curves = {0: [10.0, 30.0, 20.0], 1: [20.0, 50.0, 40.0]}
    for seed, c in curves.items():
        _fake_run(tmp_path, "hopper-medium", "mingru", seed, c)
    _fake_run(tmp_path, "hopper-medium", "transformer", 0, [5.0, 6.0])
    md = sweep.write_table(tmp_path)
    last = [20.0, 40.0]
    best = [30.0, 50.0]
    assert f"{np.mean(last):.1f} ± {np.std(last):.1f} (n=2)" in md
    assert f"{np.mean(best):.1f} ± {np.std(best):.1f}" in md
    assert "6.0 ± 0.0 (n=1)" in md
    table = json.loads((tmp_path / "table.json").read_text())
    assert len(table["runs"]) == 3 and (tmp_path / "table.csv").exists()
    assert table["time_to_score"] is None and not (tmp_path / "time_to_score.md").exists()  # no minutes recorded
    assert (tmp_path / "curves_hopper-medium.png").stat().st_size > 1000
    docs = tmp_path / "docs"
    sweep.main(["table", "--out", str(tmp_path), "--no-check-data", "--docs", str(docs)])
    assert (docs / "sweep_table.md").read_text() == md
    page = tmp_path / "RESULTS.md"
    blocks = "<!-- sweep-table -->\nold\n<!-- /sweep-table -->\n\n<!-- gpu-table -->\nold gpu\n<!-- /gpu-table -->\n"
    page.write_text(f"# Results\n\n{blocks}\nDiscussion.\n")
    sweep.main(["table", "--out", str(tmp_path), "--no-check-data", "--splice", str(page)])
    cpu_done = blocks.replace("\nold\n", f"\n{md.strip()}\n")  # only the named block changes
    assert page.read_text() == f"# Results\n\n{cpu_done}\nDiscussion.\n"
    sweep.main(
        ["table", "--out", str(tmp_path), "--no-check-data", "--splice", str(page), "--splice-name", "gpu-table"]
    )
    assert page.read_text() == f"# Results\n\n{cpu_done.replace('old gpu', md.strip())}\nDiscussion.\n"
    page.write_text("# Results without markers\n")
    with pytest.raises(SystemExit, match="no <!-- sweep-table -->"):
        sweep.main(["table", "--out", str(tmp_path), "--no-check-data", "--splice", str(page)])
    assert page.read_text() == "# Results without markers\n"
    assert {p.name for p in docs.iterdir()} == {
        "sweep_table.md",
        "sweep_table.csv",
        "scores.png",
        "curves.png",
        "curves_hopper-medium.png",
    }


def test_table_has_mean_of_last_three_and_every_target(tmp_path):
    """Besides the last (primary) score and the best: the mean of each run's last three evaluations, and the last
    score at each of DT's targets, as the runs recorded them."""
    for seed, (hi, lo) in enumerate([(80.0, 40.0), (60.0, 30.0)]):
        _fake_run(tmp_path, "hopper-medium", "mingru", seed, [10.0, 20.0, 30.0, hi])
        res_path = sweep.run_dir(tmp_path, "hopper-medium", "mingru", seed) / "results.json"
        res = json.loads(res_path.read_text())
        res["last_per_target"] = {"3600": hi, "1800": lo}
        res_path.write_text(json.dumps(res))
    md = sweep.write_table(tmp_path)
    last3 = [np.mean([20.0, 30.0, 80.0]), np.mean([20.0, 30.0, 60.0])]  # no mean_last3 recorded: from the curve
    assert "| mingru last | mingru best | mingru last 3 |" in md
    assert f"| 70.0 ± 10.0 (n=2) | 70.0 ± 10.0 | {np.mean(last3):.1f} ± {np.std(last3):.1f} |" in md
    assert "| hopper-medium | 3600 | 50.3 | 70.0 ± 10.0 (n=2) |" in md
    assert "| hopper-medium | 1800 | 50.3 | 35.0 ± 5.0 (n=2) |" in md
    assert md.index("| 3600 |") < md.index("| 1800 |")  # the higher (headline) target first
    header = (tmp_path / "table.csv").read_text().splitlines()[0].split(",")
    assert "last@3600" in header and "last@1800" in header and "last3" in header


def test_table_has_data_scores_dataset_order_and_averages_over_common_datasets(tmp_path):
    _fake_run(tmp_path, "walker2d-medium", "mingru", 0, [10.0])
    _fake_run(tmp_path, "walker2d-medium", "transformer", 0, [30.0])
    _fake_run(tmp_path, "hopper-medium-replay", "mingru", 0, [20.0])
    _fake_run(tmp_path, "hopper-medium-replay", "transformer", 0, [40.0])
    _fake_run(tmp_path, "hopper-medium", "mingru", 0, [60.0])
    _fake_run(tmp_path, "hopper-expert", "mingru", 0, [80.0])
    _fake_run(tmp_path, "hopper-expert", "transformer", 0, [70.0])
    md = sweep.write_table(tmp_path)
    first_table = md.split("\n\n")[0].splitlines()[2:]
    names = [line.split(" | ")[0][2:] for line in first_table if "**" not in line]
    assert names == ["hopper-medium", "hopper-medium-replay", "hopper-expert", "walker2d-medium"]
    hopper_data = 100 * (1617.0 + 20.272305) / (3234.3 + 20.272305)
    walker_data = 100 * (2297.0 - 1.629008) / (4592.3 - 1.629008)
    assert f"| hopper-medium | {hopper_data:.1f} |" in md
    # hopper-medium has no transformer run, so both averages leave it out for every backbone.
    t3 = f"{np.mean([30.0, 40.0, 70.0]):.1f}"  # a one-eval run's last, best and last-three mean are the same
    all3 = f"{t3} | {t3} | {t3} | {np.mean([10.0, 20.0, 80.0]):.1f}"
    assert f"| **average** (3 datasets) | {np.mean([walker_data, hopper_data, hopper_data]):.1f} | {all3}" in md
    paper = f"{np.mean([30.0, 40.0]):.1f} | {np.mean([30.0, 40.0]):.1f} | {np.mean([30.0, 40.0]):.1f} | 15.0"
    assert "| **average, medium / medium-replay / medium-expert** (2 datasets) | " in md and paper in md
    # mingru has every dataset, the transformer (an ablation column here) not: a second row averages mingru over all
    # four datasets and leaves the transformer's cells empty.
    every = f"{np.mean([10.0, 20.0, 60.0, 80.0]):.1f}"
    data4 = np.mean([walker_data, hopper_data, hopper_data, hopper_data])
    assert f"| **average, agents with every dataset** (4 datasets) | {data4:.1f} | – | – | – | {every} |" in md
    assert (tmp_path / "scores.png").stat().st_size > 1000


def test_comparison_averages_differences_over_shared_datasets_with_a_bootstrap_interval(tmp_path):
    rows = [{"config": "hopper-medium", "backbone": "transformer", "last": v} for v in (10.0, 20.0)] + [
        {"config": "hopper-medium", "backbone": "mingru", "last": v} for v in (30.0, 30.0)
    ]
    rows += [{"config": "walker2d-medium", "backbone": "transformer", "last": v} for v in (50.0, 50.0)]
    rows += [{"config": "walker2d-medium", "backbone": "mingru", "last": v} for v in (40.0, 40.0)]
    rows += [{"config": "hopper-expert", "backbone": "mingru", "last": 99.0}]  # no transformer run: left out
    lines = sweep.compare_to(rows, "transformer")
    assert len(lines) == 3
    _, name, mean, ci, ahead, _ = lines[2].split("|")
    # hopper: 30 - 15 = +15; walker2d: 40 - 50 = -10; mean +2.5. Only the transformer's hopper seeds vary: its
    # resampled mean lies in [10, 20], so the average difference lies in [(30-20-10)/2, (30-10-10)/2] = [0, +5].
    assert name.strip() == "mingru" and mean.strip() == "+2.5" and ahead.strip() == "1 of 2"
    lo, hi = (float(v) for v in ci.strip(" []").split(","))
    assert 0.0 <= lo < 2.5 < hi <= 5.0
    rows.append({"config": "walker2d-medium", "backbone": "minlstm", "last": 60.0})  # one seed: no interval
    assert sweep.compare_to(rows, "transformer")[3] == "| minlstm | +10.0 | – | 1 of 1 |"
    # With the data's scores: on how many datasets each agent's mean last score is at or above the data's.
    data = {"hopper-medium": 25.0, "walker2d-medium": 45.0, "hopper-expert": 100.0}
    lines = sweep.compare_to(rows, "transformer", data)
    assert lines[0].endswith("| datasets at or above the data |") and lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| transformer | – | – | – | 1 of 2 |"  # 15 < 25, 50 >= 45
    assert lines[3].startswith("| mingru | +2.5 |") and lines[3].endswith("| 1 of 2 | 1 of 3 |")  # 30 >= 25 only
    assert lines[4] == "| minlstm | +10.0 | – | 1 of 1 | 1 of 1 |"


def test_command_resumes_and_applies_recurrent_overrides(tmp_path):
    cmd = sweep.train_command(tmp_path, "hopper-medium", "mingru", 0, 100, 1, ["lr=1e-3"], ["acting_mode=recurrent"])
    assert "--resume" not in cmd and "acting_mode=recurrent" in cmd and "lr=1e-3" in cmd
    dt = sweep.train_command(tmp_path, "hopper-medium", "transformer", 0, 100, 1, [], ["acting_mode=recurrent"])
    assert "acting_mode=recurrent" not in dt
    rd = sweep.run_dir(tmp_path, "hopper-medium", "mingru", 0)
    (rd / "tb").mkdir(parents=True)  # killed before its first checkpoint: nothing to resume, start it again
    killed = sweep.train_command(tmp_path, "hopper-medium", "mingru", 0, 100, 1, [])
    assert "--overwrite" in killed and "--resume" not in killed
    latest = rd / "checkpoints" / "latest"
    latest.parent.mkdir(parents=True)
    latest.write_text("step_0000050")
    assert "--resume" in sweep.train_command(tmp_path, "hopper-medium", "mingru", 0, 100, 1, [])


def test_runs_on_rebuilt_data_are_set_aside_not_deleted(tmp_path):
    now = {"name": "minari:x/y/medium-v0", "episodes": 10, "transitions": 1000, "return_mean": 5.0, "fingerprint": "a"}
    _fake_run(tmp_path, "hopper-medium", "mingru", 0, [10.0, 20.0])  # same data
    _fake_run(tmp_path, "hopper-medium", "mingru", 1, [30.0, 40.0])  # data rebuilt since
    _fake_run(tmp_path, "hopper-medium", "minlstm", 0, [1.0, 2.0])  # no fingerprint, other counts
    _fake_run(tmp_path, "hopper-medium", "minlstm", 1, [3.0, 4.0])  # no fingerprint: cannot be shown to match
    summaries = {
        ("mingru", 0): now,
        ("mingru", 1): {**now, "fingerprint": "b"},
        ("minlstm", 0): {k: v for k, v in now.items() if k != "fingerprint"} | {"episodes": 11},
        ("minlstm", 1): {k: v for k, v in now.items() if k != "fingerprint"},
    }
    for (b, seed), summary in summaries.items():
        (sweep.run_dir(tmp_path, "hopper-medium", b, seed) / "dataset.json").write_text(json.dumps(summary))
    log = tmp_path / "hopper-medium" / "mingru" / "seed1.log"
    log.write_text("training log")
    cells = [("hopper-medium", b, s) for b in ("mingru", "minlstm") for s in (0, 1)]
    moved = sweep.set_aside_stale(tmp_path, cells, {"hopper-medium": now})
    names = sorted(p.parent.parent.name + "/" + p.name.split("-")[0] for p in moved)
    assert names == ["mingru/seed1", "minlstm/seed0", "minlstm/seed1"]
    for p in moved:  # kept whole, with its log
        assert (p / "results.json").is_file() and p.parent.name == "stale"
    assert (moved[0].parent / f"{moved[0].name}.log").exists() or (moved[1].parent / f"{moved[1].name}.log").exists()
    assert not log.exists()
    rows = sweep.read_runs(tmp_path)  # the table reads only current runs
    assert sorted((r["backbone"], r["seed"]) for r in rows) == [("mingru", 0)]
    assert sweep.set_aside_stale(tmp_path, cells, {"hopper-medium": now}) == []
    assert sweep.existing_cells(tmp_path) == [("hopper-medium", "mingru", 0)]
    assert sweep.existing_cells(tmp_path, ["walker2d-medium"]) == []


def test_dt_agent_is_dt_whatever_the_sweep_sets():
    import run_rl

    cmd = sweep.train_command(Path("/tmp/x"), "hopper-medium", "dt", 0, 100, 1,
                              ["layout=stacked", "rtg_embed=layernorm", "lr=0.0003", "lr_schedule=wsd",
                               "decay_fraction=0.3", "time_budget_min=4"],
                              ["acting_mode=recurrent"])  # fmt: skip
    argv = cmd[cmd.index("train") :]
    cfg = run_rl.resolve_train_config(run_rl.parse_args(argv))
    assert (cfg.backbone, cfg.layout, cfg.acting_mode) == ("transformer", "interleaved", "window")
    assert cfg.rtg_embed == "joint"  # DT's R_t token, not the recipe's LayerNormed one
    assert (cfg.lr, cfg.warmup_steps, cfg.lr_schedule) == (1e-4, 10_000, "constant")  # DT's schedule
    assert cfg.decay_fraction == 0.2  # the default, not the sweep's 0.3
    assert cfg.time_budget_min == 4 and cfg.dataset == "minari:minrnn/hopper/medium-v0"  # shared budget, dataset
    assert sweep.backbones_in([{"backbone": b} for b in ("mingru", "transformer", "dt")]) == [
        "dt",
        "transformer",
        "mingru",
    ]


def test_archive_keeps_the_records_a_table_needs_and_they_count_as_finished(tmp_path):
    """archive copies results, evals, dataset and config of finished runs (no weights, no unfinished runs); a table
    made from the archive (into another folder, leaving the archive as it was) is the table made from the runs;
    copied back, the runs are not trained again; a differing record already in the archive is an error that copies
    nothing and overwrites nothing."""
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    _fake_run(runs, "hopper-medium", "mingru", 0, [10.0, 30.0])
    _fake_run(runs, "walker2d-medium", "minlstm", 1, [5.0, 7.0])
    for rd in (sweep.run_dir(runs, "hopper-medium", "mingru", 0), sweep.run_dir(runs, "walker2d-medium", "minlstm", 1)):
        (rd / "config.yaml").write_text("budget_clock: cpu\n")
        (rd / "checkpoints" / "step_0000002").mkdir(parents=True)
        (rd / "checkpoints" / "step_0000002" / "model.safetensors").write_bytes(b"weights")
    rescore = sweep.run_dir(runs, "hopper-medium", "mingru", 0) / "evals" / "rescore-data_max"
    rescore.mkdir(parents=True)
    (rescore / "results.json").write_text(json.dumps({"normalized_score_mean": 40.0, "target_return": 3000.0}))
    (rescore / "episodes.csv").write_text("not a record")
    unfinished = sweep.run_dir(runs, "hopper-medium", "mingru", 1)
    (unfinished / "checkpoints").mkdir(parents=True)

    sweep.main(["archive", "--out", str(runs), "--to", str(kept)])
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == sorted(
        [
            f"{run}/{name}"
            for run in ("hopper-medium/mingru/seed0", "walker2d-medium/minlstm/seed1")
            for name in ("results.json", "evals.jsonl", "dataset.json", "config.yaml")
        ]
        + ["hopper-medium/mingru/seed0/evals/rescore-data_max/results.json"]
    )
    tables = tmp_path / "tables"
    sweep.main(["table", "--out", str(kept), "--no-check-data", "--to", str(tables)])
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == files  # the archive untouched
    assert (tables / "table.md").read_text() == sweep.write_table(runs)
    assert (tables / "curves_hopper-medium.png").stat().st_size > 1000
    sweep.main(["archive", "--out", str(runs), "--to", str(kept)])  # the same records again: nothing to do

    restored = tmp_path / "restored"
    sweep.archive_runs(kept, restored)
    cells = [("hopper-medium", "mingru", 0), ("hopper-medium", "mingru", 1)]
    assert [c for c in cells if not (sweep.run_dir(restored, *c) / "results.json").exists()] == [cells[1]]

    (kept / "hopper-medium" / "mingru" / "seed0" / "evals.jsonl").write_text("{}\n")
    (kept / "walker2d-medium" / "minlstm" / "seed1" / "config.yaml").unlink()
    with pytest.raises(SystemExit, match="1 record.* exist and differ") as err:
        sweep.archive_runs(runs, kept)
    assert "hopper-medium/mingru/seed0/evals.jsonl" in str(err.value)
    assert (kept / "hopper-medium" / "mingru" / "seed0" / "evals.jsonl").read_text() == "{}\n"
    assert not (kept / "walker2d-medium" / "minlstm" / "seed1" / "config.yaml").exists()  # nothing copied
