"""sweep.records: run folders into one tidy table, the sidecar, older per-run summaries, and archives of records."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fakes import HOPPER_DATA, fake_run

from sweep import records
from sweep.__main__ import main
from sweep.launch import run_dir


def test_a_run_becomes_one_row_per_evaluation_and_target(tmp_path):
    rd = fake_run(tmp_path, "hopper-medium", "mingru", 0, [10.0, 30.0, 20.0], minutes=[1, 2, 3],
                  targets={"3600": 20.0, "1800": 15.0})  # fmt: skip
    window = rd / "evals" / "window"
    window.mkdir(parents=True)
    res = {"normalized_score_mean": 25.0, "return_mean": 250.0, "steps": 3000, "train_step": 3000,
           "acting_mode": "window", "per_target": {"3600": {"n_episodes": 20, "normalized_mean": 25.0,
                                                              "return_mean": 250.0}}}  # fmt: skip
    (window / "results.json").write_text(json.dumps(res))
    df, meta = records.collect(tmp_path, "tiny")
    assert list(df.columns) == list(records.COLUMNS)
    # Two evaluations during training (the third is the final one, read from results.json with its episodes).
    train = df[df["eval"] == "train"]
    assert train["updates"].tolist() == [1000, 2000] and train["score"].tolist() == [10.0, 30.0]
    assert train["train_minutes"].tolist() == [1.0, 2.0] and (train["clock"] == "cpu").all()  # CPU, not wall
    assert (train["episodes"] == 10).all() and not train["final"].any()
    final = df[df["eval"] == "final"]
    assert final["target"].tolist() == [3600.0, 1800.0] and final["primary"].tolist() == [True, False]
    assert final["score"].tolist() == [20.0, 15.0] and (final["episodes"] == 50).all() and final["final"].all()
    assert final["train_minutes"].tolist() == [3.0, 3.0] and final["return"].tolist() == [200.0, 150.0]
    (extra,) = df[df["eval"] == "window"].itertuples()
    assert (extra.acting_mode, extra.score, extra.final, extra.updates) == ("window", 25.0, True, 3000)
    assert df["data_score"].iloc[0] == pytest.approx(HOPPER_DATA)
    assert meta["machines"] == ["Test CPU (2 cores), torch 2.13.0, 1 thread(s)"]
    assert meta["datasets"]["hopper-medium"]["data_score"] == pytest.approx(HOPPER_DATA)
    assert len(meta["commit"]) == 40 or meta["commit"] == "unknown"
    assert meta["run_commits"] == {"unrecorded": 1}  # the fake run's results.json has no "commit"


def test_collect_writes_a_csv_and_sidecar_that_read_back(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "hopper-medium", "mingru", 0, [10.0, 20.0])
    fake_run(runs, "walker2d-medium", "minlstm", 1, [5.0])
    stale = runs / "hopper-medium" / "mingru" / "stale" / "seed1-20260101"  # set aside: not read
    stale.mkdir(parents=True)
    (stale / "results.json").write_text("{}")
    out = tmp_path / "results" / "tiny.csv"
    main(["collect", str(runs), "--name", "tiny", "--out", str(out)])
    df, meta = records.read_table(out)
    assert meta["name"] == "tiny" and records.meta_path(out).name == "tiny.meta.json"
    assert sorted(df.groupby(["dataset", "agent", "seed"]).groups) == [
        ("hopper-medium", "mingru", 0),
        ("walker2d-medium", "minlstm", 1),
    ]
    again, _ = records.collect(runs, "tiny")
    pd.testing.assert_frame_equal(df, again, check_exact=False, rtol=1e-5)
    only, _ = records.read_table(f"{out}:minlstm")
    assert set(only["agent"]) == {"minlstm"}
    with pytest.raises(ValueError, match=r"has no agent\(s\) \['dt'\]"):
        records.read_table(f"{out}:dt")
    with pytest.raises(SystemExit, match="no finished run"):
        main(["collect", str(tmp_path / "results"), "--name", "x"])


def test_an_older_per_run_summary_converts(tmp_path):
    """The replaced sweep script's table.csv: one row per run, its last score at each target; ``last`` names the
    primary."""
    summary = tmp_path / "table.csv"
    summary.write_text(
        "config,backbone,seed,last,best,last3,return_last,steps,wall_time_s,acting_mode,layout,machine,data,"
        "last@3600,last@1800\n"
        'hopper-medium,dt,0,12.5,14.0,12.0,400.0,900,240.0,window,interleaved,"AMD EPYC (2 cores)",50.3,12.5,11.0\n'
        'hopper-medium,mingru,0,60.0,61.0,55.0,1900.0,3000,240.0,recurrent,stacked,"AMD EPYC (2 cores)",50.3,'
        "60.0,40.0\n"
    )
    df, meta = records.from_summary_table(summary, "old", "abc123")
    assert len(df) == 4 and (df["eval"] == "final").all() and (df["clock"] == "wall").all()
    dt = df[df["agent"] == "dt"]
    assert dt["target"].tolist() == [3600.0, 1800.0] and dt["primary"].tolist() == [True, False]
    assert dt["backbone"].iloc[0] == "transformer" and dt["train_minutes"].iloc[0] == 4.0
    assert dt["return"].iloc[0] == 400.0 and pd.isna(dt["return"].iloc[1])
    assert meta["commit"] == "abc123" and meta["machines"] == ["AMD EPYC (2 cores)"]


def test_a_table_without_the_columns_is_refused(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a tidy sweep table"):
        records.read_table(bad)
    with pytest.raises(FileNotFoundError, match="no tidy table"):
        records.read_table(tmp_path / "none.csv")


def test_archive_keeps_the_records_collect_needs_and_they_count_as_finished(tmp_path):
    """archive copies results, evals, dataset and config of finished runs (no weights, no unfinished runs); the
    archive collects to the same table as the runs; copied back, the runs count as finished; a differing record
    already in the archive is an error that copies nothing and overwrites nothing."""
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    for cell in (("hopper-medium", "mingru", 0), ("walker2d-medium", "minlstm", 1)):
        rd = fake_run(runs, *cell, [10.0, 30.0])
        (rd / "checkpoints" / "step_0000002").mkdir(parents=True)
        (rd / "checkpoints" / "step_0000002" / "model.safetensors").write_bytes(b"weights")
    rescore = run_dir(runs, "hopper-medium", "mingru", 0) / "evals" / "rescore-data_max"
    rescore.mkdir(parents=True)
    (rescore / "results.json").write_text(json.dumps({"normalized_score_mean": 40.0, "target_return": 3000.0}))
    (rescore / "episodes.csv").write_text("not a record")
    (run_dir(runs, "hopper-medium", "mingru", 1) / "checkpoints").mkdir(parents=True)  # unfinished

    main(["archive", str(runs), "--to", str(kept)])
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files == sorted(
        [f"{run}/{name}" for run in ("hopper-medium/mingru/seed0", "walker2d-medium/minlstm/seed1")
         for name in ("results.json", "evals.jsonl", "dataset.json", "config.yaml")]
        + ["hopper-medium/mingru/seed0/evals/rescore-data_max/results.json"]
    )  # fmt: skip
    pd.testing.assert_frame_equal(records.collect(kept, "x")[0], records.collect(runs, "x")[0])
    main(["archive", str(runs), "--to", str(kept)])  # the same records again: nothing to do

    restored = tmp_path / "restored"
    records.archive_runs(kept, restored)
    cells = [("hopper-medium", "mingru", 0), ("hopper-medium", "mingru", 1)]
    assert [c for c in cells if not (run_dir(restored, *c) / "results.json").exists()] == [cells[1]]

    (kept / "hopper-medium" / "mingru" / "seed0" / "evals.jsonl").write_text("{}\n")
    (kept / "walker2d-medium" / "minlstm" / "seed1" / "config.yaml").unlink()
    with pytest.raises(FileExistsError, match="1 record.* exist and differ") as err:
        records.archive_runs(runs, kept)
    assert "hopper-medium/mingru/seed0/evals.jsonl" in str(err.value)
    assert (kept / "hopper-medium" / "mingru" / "seed0" / "evals.jsonl").read_text() == "{}\n"
    assert not (kept / "walker2d-medium" / "minlstm" / "seed1" / "config.yaml").exists()  # nothing copied


def test_minutes_are_on_the_budget_clock_unless_some_evaluation_lacks_it(tmp_path):
    """A run on a CPU budget reads CPU minutes; one resumed from a run made before CPU minutes were recorded (an
    evaluation without ``cpu_min``) reads wall-clock minutes throughout, not a mix of the two."""
    fake_run(tmp_path, "hopper-medium", "mingru", 0, [10.0, 20.0], minutes=[1, 2])
    rd = fake_run(tmp_path, "hopper-medium", "mingru", 1, [10.0, 20.0], minutes=[1, 2])
    evals = [json.loads(line) for line in (rd / "evals.jsonl").read_text().splitlines()]
    del evals[0]["cpu_min"]
    (rd / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    df, _ = records.collect(tmp_path, "x")
    by_seed = df.groupby("seed")
    assert by_seed["clock"].unique().to_dict() == {0: ["cpu"], 1: ["wall"]}
    assert by_seed["train_minutes"].apply(list).to_dict() == {0: [1.0, 2.0], 1: [2.0, 4.0]}
