"""sweep.report and `python -m sweep report`: the tables a reader sees, from fake runs, and their plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import HOPPER_DATA, WALKER_DATA, fake_run
from scipy import stats as sps

from sweep import records, report, summary
from sweep.__main__ import main


def _matrix(out):
    for seed, s in enumerate([[10.0, 30.0, 20.0], [20.0, 50.0, 40.0], [30.0, 70.0, 60.0]]):
        fake_run(out, "hopper-medium", "mingru", seed, s, minutes=[1, 2, 3], targets={"3600": s[-1], "1800": 5.0})
    for seed, s in enumerate([[5.0, 6.0, 7.0], [6.0, 8.0, 9.0]]):
        fake_run(out, "hopper-medium", "attention", seed, s, minutes=[2, 4, 6])
    fake_run(out, "walker2d-medium", "mingru", 0, [60.0], minutes=[1])
    fake_run(out, "walker2d-medium", "attention", 0, [40.0], minutes=[1])
    df, meta = records.collect(out, "tiny")
    return df, meta


def test_report_tables(tmp_path):
    df, meta = _matrix(tmp_path / "runs")
    md = report.report_md(df, meta, "attention", reps=200)
    last = [20.0, 40.0, 60.0]
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(last), scale=sps.sem(last))
    assert "| dataset | data | attention | mingru |" in md  # attention before the recurrent agents
    assert f"| hopper-medium | {HOPPER_DATA:.1f} | 8.0 ± 1.4 [" in md
    assert f"{np.mean(last):.1f} ± {np.std(last, ddof=1):.1f} [{lo:.1f}, {hi:.1f}] · 1/3 |" in md  # only 60 >= 50.3
    assert f"| walker2d-medium | {WALKER_DATA:.1f} | 40.0 (n=1) · 0/1 | 60.0 (n=1) · 1/1 |" in md
    assert md.index("| hopper-medium |") < md.index("| walker2d-medium |")
    agg = md.split("| agent | IQM")[1]
    assert "P(agent > attention) [95 % CI]" in agg
    assert "| mingru | " in agg and "| 2 of 4 | 1 of 2 | 1000 (1000–1000), cpu clock |" in agg
    assert "| attention | " in agg and "| – | 0 of 3 | 0 of 2 | 500 (500–1000), cpu clock |" in agg
    # Seed 0 is the one each agent has on both datasets: the IQM pools it alone; P uses hopper's other seeds too.
    assert "over the seeds an agent has on every one of them (1 each, so a dataset's extra seeds count" in agg
    assert "from every seed each has there" in agg
    # Per dataset and agent, the final updates and updates per CPU-minute: 3000 in 3 (mingru) and 6 (attention).
    assert "| hopper-medium | 3000 (500/min, cpu) | 3000 (1000/min, cpu) |" in md
    assert "| walker2d-medium | 1000 (1000/min, cpu) | 1000 (1000/min, cpu) |" in md
    # Equal updates at 1000, the walker2d runs' final count: on hopper the evaluation at 1000 of each run.
    equal = md.split("Equal updates: each run's last evaluation at or before 1000 updates")[1]
    assert "median (min–max): attention 1000 (1000–1000), mingru 1000 (1000–1000)." in equal
    lo, hi = sps.t.interval(0.95, 2, loc=20.0, scale=sps.sem([10.0, 20.0, 30.0]))
    assert (
        f"| hopper-medium | {HOPPER_DATA:.1f} | 5.5 ± 0.7 [" in equal
        and f"20.0 ± 10.0 [{lo:.1f}, {hi:.1f}] · 0/3 |" in equal
    )
    later = report.report_md(df, meta, None, reps=10, updates=2000).split("at or before 2000 updates")[1]
    assert "| hopper-medium | 50.3 | 7.0 ± 1.4 [" in later and "| 50.0 ± 20.0 [" in later  # 6, 8 and 30, 50, 70
    walker = later.split("Final score at each target")[0]  # read at its last evaluation, 1000 updates
    assert f"| walker2d-medium | {WALKER_DATA:.1f} | 40.0 (n=1) · 0/1 | 60.0 (n=1) · 1/1 |" in walker
    assert "| hopper-medium | 3600 | 8.0 ± 1.4 (n=2) | 40.0 ± 20.0 (n=3) |" in md
    assert "| hopper-medium | 1800 | – | 5.0 ± 0.0 (n=3) |" in md
    assert md.index("| 3600 |") < md.index("| 1800 |")  # the higher (primary) target first
    # Minutes to the data: on hopper only seed 2 gets there (70 at 2 minutes), on walker2d at 1; to attention's
    # final (8.0 and 40.0) every mingru seed at its first evaluation; attention's own: 4 and 1 minutes.
    assert "| hopper-medium | 50.3 | 8.0 | – (0/2) | 4.0 (1/2) | 2.0 (1/3) | 1.0 (3/3) |" in md
    assert "| mingru | 1.5 (2 of 2) | 1.0 (2 of 2) | 0.62 (2) |" in md
    assert "Machine: Test CPU (2 cores), torch 2.13.0, 1 thread(s)." in md
    with pytest.raises(ValueError, match="no baseline agent 'dt'"):
        report.report_md(df, meta, "dt")


def test_several_baselines_compare_with_the_strongest_by_iqm(tmp_path):
    df, meta = _matrix(tmp_path / "runs")
    md = report.report_md(df, meta, ["attention", "mingru"], reps=50)
    agg = md.split("| agent | IQM")[1]
    assert "P(agent > mingru) [95 % CI]" in agg and "| attention | " in agg  # mingru's IQM is the higher
    assert "mingru is the strongest of the baselines attention, mingru by IQM, and P is given against each" in agg
    # P against the other baseline too, after the strongest's: every pair of runs on both datasets has mingru above.
    head = agg.splitlines()[0]
    assert head.index("P(agent > mingru)") < head.index("P(agent > attention)")
    s = summary.summarize(df, ["attention", "mingru"], reps=50)
    assert list(s.improvements) == ["mingru", "attention"]
    over_attention = s.improvements["attention"].set_index("agent")
    assert list(over_attention.index) == ["mingru"] and over_attention.loc["mingru", "poi"] == 1.0
    assert s.improvement.set_index("agent").loc["attention", "poi"] == 0.0
    rows = [line for line in report.headline_table(s) if line.startswith("| P(agent >")]
    assert [r.split(")")[0] for r in rows] == ["| P(agent > mingru", "| P(agent > attention"]
    assert rows[1].endswith("| – | 1.00 (1 seed) |")  # columns attention, mingru; walker2d has one seed each
    assert summary.to_json(s, meta)["improvement_over_others"]["attention"][0]["poi"] == 1.0
    assert "P(agent > attention)" in report.report_md(df, meta, ["attention"], reps=50)
    with pytest.raises(ValueError, match="no baseline agent 'dt-cpu'"):
        report.report_md(df, meta, ["attention", "dt-cpu"])


def test_headline_name_puts_the_compact_table_in_a_named_block(tmp_path, capsys):
    """--headline-name: a results page keeps a second sweep's compact table in a block of its own."""
    df, meta = _matrix(tmp_path / "runs")
    csv = records.write_table(df, meta, tmp_path / "tiny.csv")
    page = tmp_path / "RESULTS.md"
    page.write_text("# R\n<!-- HEADLINE -->\nkeep\n<!-- /HEADLINE -->\n<!-- second -->\nold\n<!-- /second -->\n")
    out = tmp_path / "report"
    main(["report", str(csv), "--baseline", "attention", "--out", str(out), "--reps", "100", "--headline", str(page),
          "--headline-name", "second"])  # fmt: skip
    head = (out / "headline.md").read_text().strip()
    kept = "# R\n<!-- HEADLINE -->\nkeep\n<!-- /HEADLINE -->\n"
    assert page.read_text() == f"{kept}<!-- second -->\n{head}\n<!-- /second -->\n"
    assert "updated the block <!-- second -->" in capsys.readouterr().out


def test_report_command_writes_markdown_and_plots_and_splices(tmp_path, capsys):
    df, meta = _matrix(tmp_path / "runs")
    csv = records.write_table(df, meta, tmp_path / "tiny.csv")
    rd = tmp_path / "runs" / "hopper-medium" / "mingru" / "seed0" / "evals" / "window"
    rd.mkdir(parents=True)
    (rd / "results.json").write_text('{"normalized_score_mean": 33.0, "steps": 3000, "acting_mode": "window"}')
    page = tmp_path / "RESULTS.md"
    page.write_text("# R\n<!-- tiny -->\nold\n<!-- /tiny -->\n<!-- other -->\nkeep\n<!-- /other -->\n")
    out = tmp_path / "report"
    readme = tmp_path / "README.md"
    readme.write_text("# P\n<!-- HEADLINE -->\nold\n<!-- /HEADLINE -->\nafter\n")
    main(["report", str(csv), "--baseline", "attention", "--out", str(out), "--reps", "100", "--splice", str(page),
          "--splice-name", "tiny", "--headline", str(readme)])  # fmt: skip
    md = (out / "report.md").read_text()
    head = readme.read_text()  # the compact table: mean ± sample std (seeds at or above the data)
    assert head.startswith("# P\n<!-- HEADLINE -->\n| dataset | data | attention | mingru |") and "old" not in head
    assert f"| hopper-medium | {HOPPER_DATA:.1f} | 8.0 ± 1.4 (0/2) | 40.0 ± 20.0 (1/3) |" in head
    assert f"| walker2d-medium | {WALKER_DATA:.1f} | 40.0 (0/1) | 60.0 (1/1) |" in head
    assert "| **IQM** [95 % CI] | | " in head and "| P(agent > attention) [95 % CI] | | – | " in head
    assert "| updates per minute (median) | | 500 | 1000 |" in head and head.endswith("<!-- /HEADLINE -->\nafter\n")
    kept = "<!-- other -->\nkeep\n<!-- /other -->\n"
    # --splice puts the per-dataset and aggregate tables on the page and links the rest, relative to the page.
    brief = md.split("\nEqual updates: ")[0].rstrip("\n")
    machine = md.strip().splitlines()[-1]
    link = "\n\nThe equal-updates reading of the evaluations during training, the final score at each target and the "
    link += "minutes to a score are in the full report, [report.md](report/report.md).\n\n"
    assert "Final score at each target" in md and "P(agent > attention)" in brief
    assert page.read_text() == f"# R\n<!-- tiny -->\n{brief}{link}{machine}\n<!-- /tiny -->\n{kept}"
    for name in ("scores.png", "aggregates.png", "curves.png"):
        assert (out / name).stat().st_size > 1000
    strict = {"parse_constant": lambda c: pytest.fail(f"{c} in report.json: not JSON")}
    numbers = json.loads((out / "report.json").read_text(), **strict)
    cells = {(r["dataset"], r["agent"]): r for r in numbers["per_dataset"]}
    assert cells[("hopper-medium", "mingru")] | {"lo": 0, "hi": 0} == {
        "dataset": "hopper-medium", "agent": "mingru", "n": 3, "mean": 40.0, "std": 20.0, "lo": 0, "hi": 0,
        "data": pytest.approx(HOPPER_DATA, abs=1e-4), "at_data": 1, "updates": 3000, "per_minute": 1000.0,
        "clock": "cpu"}  # fmt: skip
    assert cells[("walker2d-medium", "mingru")]["std"] is None  # one seed: no sample std
    assert numbers["baseline"] == "attention" and "Student-t" in numbers["intervals"]["per_dataset"]
    (poi,) = numbers["improvement"]
    assert poi["agent"] == "mingru" and poi["lo"] is None and poi["hi"] is None  # seed 0 alone ran on both: no interval
    assert numbers["equal_updates"]["updates"] == 1000 and len(numbers["equal_updates"]["runs"]) == 7
    page.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- tiny -->"):
        main(["report", str(csv), "--out", str(out), "--reps", "10", "--splice", str(page), "--splice-name", "tiny"])
    assert page.read_text() == "# no markers\n"
    # Another evaluation of the final weights (here a window-acting one) gets its own table beside the final.
    collected = tmp_path / "with-window.csv"
    main(["collect", str(tmp_path / "runs"), "--name", "w", "--out", str(collected)])
    main(["report", f"{collected}:mingru", f"{csv}:attention", "--baseline", "attention", "--out", str(out),
          "--reps", "10"])  # fmt: skip
    md = (out / "report.md").read_text()
    assert "evaluated again as `window`" in md and "| hopper-medium | 20.0 → 33.0 (n=1) |" in md
