"""scripts/sweep.py: time to score (minutes to the data's score and to dt's final one) and its plots, from fake runs
whose histories are written by hand; and --recipe, layered onto every agent but dt."""

from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location("test_sweep", Path(__file__).with_name("test_sweep.py"))
test_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(test_sweep)
sweep = test_sweep.sweep

HOPPER_DATA = 100 * (1617.0 + 20.272305) / (3234.3 + 20.272305)  # 50.31: what _fake_run's hopper data scores
WALKER_DATA = 100 * (2297.0 - 1.629008) / (4592.3 - 1.629008)  # 50.00


def _timed_run(out: Path, config: str, backbone: str, seed: int, minutes: list[float], scores: list[float]) -> Path:
    """A finished run on a 20-minute CPU budget whose evaluations came at ``minutes`` of CPU time (wall time twice
    that, so a table on the wrong clock reads double)."""
    test_sweep._fake_run(out, config, backbone, seed, scores)
    rd = sweep.run_dir(out, config, backbone, seed)
    evals = [
        {"step": 1000 * (i + 1), "train_min": 2 * m, "cpu_min": m, "score": s}
        for i, (m, s) in enumerate(zip(minutes, scores))
    ]
    (rd / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    res = json.loads((rd / "results.json").read_text())
    res |= {"history": evals, "last": evals[-1], "train_min": 2 * minutes[-1], "cpu_min": minutes[-1]}
    (rd / "results.json").write_text(json.dumps(res))
    cfg = {"steps": 1_000_000, "time_budget_min": 20.0, "budget_clock": "cpu"}
    (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
    return rd


def _matrix(out: Path) -> None:
    """hopper-medium: dt x3 (final 60), mingru x2, minlstm x1 (never there), transformer without minutes;
    walker2d-medium: dt x1 (final 80), mingru x1."""
    _timed_run(out, "hopper-medium", "dt", 0, [1, 2, 3, 4], [20, 45, 55, 60])
    _timed_run(out, "hopper-medium", "dt", 1, [1, 2, 3, 4], [30, 52, 58, 70])
    _timed_run(out, "hopper-medium", "dt", 2, [1.5, 3, 4.5], [10, 40, 50])  # 50 < 50.31: never reaches the data
    _timed_run(out, "hopper-medium", "mingru", 0, [0.5, 1, 1.5, 2], [40, 55, 62, 65])
    _timed_run(out, "hopper-medium", "mingru", 1, [0.5, 1, 1.5, 2.5], [50, 51, 59, 61])
    _timed_run(out, "hopper-medium", "minlstm", 0, [1, 2], [10, 20])
    test_sweep._fake_run(out, "hopper-medium", "transformer", 0, [30.0, 65.0])  # an older run: no minutes
    _timed_run(out, "walker2d-medium", "dt", 0, [2, 5], [45, 80])
    _timed_run(out, "walker2d-medium", "mingru", 0, [1, 2, 3], [60, 70, 85])


def test_time_to_score_by_hand(tmp_path):
    _matrix(tmp_path)
    tts = sweep.time_to_score(sweep.read_runs(tmp_path))
    assert tts["clock"] == {"cpu": 8}  # the transformer run has no minutes: left out
    assert list(tts["average"]) == ["dt", "mingru", "minlstm"]
    hopper, walker = tts["datasets"]["hopper-medium"], tts["datasets"]["walker2d-medium"]
    assert hopper["data"] == pytest.approx(HOPPER_DATA) and hopper["dt_final"] == pytest.approx(60.0)
    assert walker["dt_final"] == pytest.approx(80.0)
    dt = hopper["agents"]["dt"]
    # to the data (50.31): seed 0 at 3 (55), seed 1 at 2 (52), seed 2 never; to dt's final (60): 4, 4, never.
    assert dt["to_data"] == {"minutes": 2.5, "reached": 2, "seeds": 3, "per_seed": [3, 2, None]}
    assert dt["to_dt_final"] == {"minutes": 4.0, "reached": 2, "seeds": 3, "per_seed": [4, 4, None]}
    mingru = hopper["agents"]["mingru"]
    assert mingru["to_data"]["per_seed"] == [1, 1] and mingru["to_dt_final"]["per_seed"] == [1.5, 2.5]
    assert hopper["agents"]["minlstm"]["to_data"] == {"minutes": None, "reached": 0, "seeds": 1, "per_seed": [None]}
    assert "minlstm" not in walker["agents"]
    assert walker["agents"]["mingru"]["to_dt_final"]["minutes"] == 3
    avg = tts["average"]
    assert avg["dt"]["to_data"] == {"minutes": pytest.approx((2.5 + 5) / 2), "datasets": 2, "of": 2}
    assert avg["dt"]["to_dt_final"]["minutes"] == pytest.approx((4 + 5) / 2)
    assert avg["mingru"]["to_dt_final"]["minutes"] == pytest.approx((2 + 3) / 2)
    # mingru's minutes to dt's final over dt's: hopper 2 / 4, walker2d 3 / 5.
    assert avg["mingru"]["ratio_to_dt"] == {"ratio": pytest.approx((2 / 4 + 3 / 5) / 2), "datasets": 2}
    assert avg["dt"]["ratio_to_dt"] == {"ratio": 1.0, "datasets": 2}
    assert avg["minlstm"]["to_data"] == {"minutes": None, "datasets": 0, "of": 1}
    assert avg["minlstm"]["ratio_to_dt"] == {"ratio": None, "datasets": 0}


def test_table_writes_time_to_score_and_time_curves_and_publishes_them(tmp_path):
    out = tmp_path / "sweep"
    _matrix(out)
    sweep.write_table(out)
    md = (out / "time_to_score.md").read_text()
    hopper = "| 60.0 | 2.5 (2/3) | 4.0 (2/3) | 1.0 (2/2) | 2.0 (2/2) | – (0/1) | – (0/1) |"
    walker = "| 80.0 | 5.0 (1/1) | 5.0 (1/1) | 1.0 (1/1) | 3.0 (1/1) | – | – |"  # no minlstm run there
    assert f"| hopper-medium | {HOPPER_DATA:.1f} {hopper}" in md
    assert f"| walker2d-medium | {WALKER_DATA:.1f} {walker}" in md
    assert "| dt | 3.8 (2 of 2) | 4.5 (2 of 2) | 1.00 (2) |" in md
    assert "| mingru | 1.0 (2 of 2) | 2.5 (2 of 2) | 0.55 (2) |" in md
    assert "| minlstm | – | – | – |" in md
    assert "transformer" not in md and "Minutes: CPU minutes of update time" in md
    table = json.loads((out / "table.json").read_text())
    assert len(table["runs"]) == 9 and table["time_to_score"]["average"]["mingru"]["ratio_to_dt"]["datasets"] == 2
    pngs = ["curves_time.png", "curves_time_hopper-medium.png", "curves_time_walker2d-medium.png"]
    for name in pngs:
        assert (out / name).stat().st_size > 1000
    # The comparison with dt still uses the last scores, and the caption names the budget.
    table_md = (out / "table.md").read_text()
    assert "| mingru | +4.0 | – | 2 of 2 |" in table_md  # last scores: hopper (65 + 61) / 2 - 60, walker2d 85 - 80
    budgets = "20 min on the cpu clock (at most 1000000 steps); 2000 steps"  # the transformer's older run: no budget
    assert f"Budget per run: {budgets}." in table_md
    assert f"Not at equal budget: the runs had different budgets: {budgets}." in table_md

    docs = tmp_path / "docs"
    sweep.main(["table", "--out", str(out), "--no-check-data", "--docs", str(docs)])
    assert (docs / "sweep_time_to_score.md").read_text() == md
    assert {*pngs, "curves.png", "scores.png"} <= {p.name for p in docs.iterdir()}
    page = tmp_path / "RESULTS.md"
    page.write_text("<!-- sweep-table -->\nold\n<!-- /sweep-table -->\n<!-- sweep-table-time -->\nold\n"
                    "<!-- /sweep-table-time -->\n")  # fmt: skip
    sweep.main(["table", "--out", str(out), "--no-check-data", "--splice", str(page)])
    text = page.read_text()
    assert text == f"<!-- sweep-table -->\n{table_md.strip()}\n<!-- /sweep-table -->\n<!-- sweep-table-time -->\n" \
        f"{md.strip()}\n<!-- /sweep-table-time -->\n"  # fmt: skip


def test_minutes_come_from_the_budget_clock_else_the_wall_clock():
    evals = [{"step": 1, "train_min": 2.0, "cpu_min": 1.0, "score": 5.0}]
    assert sweep._time_curve(evals, "cpu") == ([(1.0, 5.0)], "cpu")
    assert sweep._time_curve(evals, "wall") == ([(2.0, 5.0)], "wall")
    older = [{"step": 1, "train_min": 2.0, "score": 5.0}, *evals]  # resumed from a run made before cpu_min
    assert sweep._time_curve(older, "cpu") == ([(2.0, 5.0), (2.0, 5.0)], "wall")
    assert sweep._time_curve([{"step": 1, "score": 5.0}], "cpu") == ([], "wall")
    assert "each run on its own clock (1 runs CPU, 2 runs wall" in sweep._clock_text({"cpu": 1, "wall": 2})
    assert doctest.testmod(sweep).failed == 0


def test_recipe_goes_after_the_dataset_config_for_every_agent_but_dt(tmp_path):
    import run_rl

    dataset = str(sweep.ROOT / "configs" / "hopper-medium.yaml")
    own = tmp_path / "mine.yaml"
    own.write_text("lr: 0.002\n")
    budget = ["time_budget_min=20", "layout=interleaved", "rtg_embed=joint"]  # the recipe's layernorm needs stacked
    cfgs = {}
    for b in ("dt", "transformer", "mingru"):
        cmd = sweep.train_command(tmp_path, "hopper-medium", b, 0, 100, 1, budget, [], ["cpu-budget", str(own)])
        configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
        if b == "dt":
            assert configs == ["dt", dataset]
        else:
            assert configs == [dataset, str(sweep.ROOT / "configs" / "cpu-budget.yaml"), str(own)]
        cfgs[b] = run_rl.resolve_train_config(run_rl.parse_args(cmd[cmd.index("train") :]))
    assert (cfgs["dt"].lr, cfgs["dt"].warmup_steps, cfgs["dt"].layout) == (1e-4, 10_000, "interleaved")
    assert (cfgs["mingru"].lr, cfgs["mingru"].warmup_steps) == (0.002, 300)  # the later recipe wins
    assert cfgs["mingru"].layout == "interleaved" and cfgs["transformer"].time_budget_min == 20.0  # --set on top
    assert cfgs["mingru"].rtg_embed == "joint"
    plain = sweep.train_command(tmp_path, "hopper-medium", "mingru", 0, 100, 1, [], [], ["cpu-budget"])
    cfg = run_rl.resolve_train_config(run_rl.parse_args(plain[plain.index("train") :]))
    assert (cfg.layout, cfg.rtg_embed, cfg.lr_schedule) == ("stacked", "layernorm", "wsd")  # the recipe as shipped
    assert all(c.time_budget_min == 20.0 for c in cfgs.values())


def test_sweep_passes_recipes_to_each_run_and_checks_they_exist(tmp_path, monkeypatch, capsys):
    commands = []
    monkeypatch.setattr(sweep.subprocess, "call", lambda cmd, **kw: commands.append(cmd) or 0)
    sweep.main(["run", "--configs", "hopper-medium", "--backbones", "dt", "mingru", "--seeds", "0", "--steps", "1",
                "--out", str(tmp_path), "--engine", "pool", "--no-check-data", "--recipe", "cpu-budget"])  # fmt: skip
    recipe = str(sweep.ROOT / "configs" / "cpu-budget.yaml")
    by_agent = {cmd[cmd.index("--out") + 1].split("/")[-2]: cmd for cmd in commands}
    assert recipe in by_agent["mingru"] and recipe not in by_agent["dt"]
    with pytest.raises(SystemExit):
        sweep.main(["run", "--configs", "hopper-medium", "--steps", "1", "--out", str(tmp_path), "--engine", "pool",
                    "--recipe", "no-such-recipe"])  # fmt: skip
    assert "no recipe" in capsys.readouterr().err
