"""scripts/parity.py: our side of the DT parity check runs for real, and the table reads both sides' logs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("parity", ROOT / "scripts" / "parity.py")
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)


def test_export_then_our_side_trains_dt_on_the_file(minari_datasets, tmp_path, capsys):
    out = tmp_path / "parity"
    parity.main(["export", "--datasets", minari_datasets.ours_id, "--out", str(out)])
    (file,) = parity.files_in(out)
    assert file.name == "hopper-tiny.hdf5"
    args = parity.argparse.Namespace(steps=4, eval_every=2, episodes=1, set=[])
    run = out / "ours" / "hopper-tiny-dt-seed0"
    cmd = parity.our_command(file, "dt", 0, args, run) + ["--set", "eval_max_steps=5", "--set", "warmup_steps=2"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    config = (run / "config.yaml").read_text()
    assert "backbone: transformer" in config and "layout: interleaved" in config and "acting_mode: window" in config
    steps = [json.loads(line)["step"] for line in (run / "evals.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    curves = parity.read_curves(out)
    assert sorted(curves[("hopper-tiny", "dt")]) == [2, 4]
    # a longer --steps continues the finished run from its checkpoint instead of training it again
    parity.main(["run", "--out", str(out), "--seeds", "0", "--steps", "6", "--eval-every", "2", "--episodes", "1",
                 "--jobs", "1"])  # fmt: skip
    steps = [json.loads(line)["step"] for line in (run / "evals.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    assert parity.steps_done_ours(run) == 6
    # a run killed before its end (no results.json) goes on from its last checkpoint, not from scratch
    (run / "results.json").unlink()
    parity.main(["run", "--out", str(out), "--seeds", "0", "--steps", "8", "--eval-every", "2", "--episodes", "1",
                 "--jobs", "1"])  # fmt: skip
    steps = [json.loads(line)["step"] for line in (run / "evals.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8] and parity.steps_done_ours(run) == 8
    (launched,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run:")][-1:]
    assert "--resume" in launched and "--overwrite" not in launched
    # a variant: its own runs and row, its setting in the run's config, the plain runs untouched
    parity.main(["run", "--out", str(out), "--seeds", "0", "--steps", "2", "--eval-every", "2", "--episodes", "1",
                 "--jobs", "1", "--variant", "sum", "--set", "loss_reduction=sum", "--set", "eval_max_steps=5",
                 "--set", "warmup_steps=2", "--set", "log_every=1"])  # fmt: skip
    assert "loss_reduction: sum" in (out / "ours" / "hopper-tiny-dt_sum-seed0" / "config.yaml").read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out / "ours" / "hopper-tiny-dt_sum-seed0" / "tb"))
    ea.Reload()
    summed = {e.step: e.value for e in ea.Scalars("train/loss")}
    per_dim = parity.read_losses(out)[("hopper-tiny", "dt_sum")]
    assert summed and per_dim == {k: [pytest.approx(v / 3)] for k, v in summed.items()}  # hopper: 3 action dims
    assert "loss_reduction: mean" in config
    curves = parity.read_curves(out)
    assert sorted(curves[("hopper-tiny", "dt_sum")]) == [2] and sorted(curves[("hopper-tiny", "dt")]) == [2, 4, 6, 8]
    with pytest.raises(SystemExit, match="--set needs --variant"):
        parity.main(["run", "--out", str(out), "--set", "loss_reduction=sum"])


def _fake_sides(out: Path) -> None:
    for seed, scores in ((0, [10.0, 30.0]), (1, [20.0, 50.0])):
        run = out / "ours" / f"hopper-medium-dt-seed{seed}"
        run.mkdir(parents=True)
        rows = [{"step": 1000 * (i + 1), "score": s} for i, s in enumerate(scores)]
        (run / "evals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        ref = out / "d3rlpy" / f"hopper-medium-seed{seed}.jsonl"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text("".join(json.dumps({"step": r["step"], "score": r["score"] + 1}) + "\n" for r in rows))
        logs = out / "d3rlpy" / f"hopper-medium-seed{seed}-logs" / f"parity-seed{seed}"
        logs.mkdir(parents=True)
        (logs / "loss.csv").write_text("1,100,0.9\n2,200,0.6\n")  # summed over hopper's 3 action dimensions


def test_table_reads_both_sides(tmp_path):
    _fake_sides(tmp_path)
    parity.main(["table", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "parity.json").read_text())
    assert data["score"]["hopper-medium|dt"] == {"1000": [10.0, 20.0], "2000": [30.0, 50.0]}
    assert data["score"]["hopper-medium|d3rlpy-dt"]["2000"] == [31.0, 51.0]
    assert np.allclose(data["loss"]["hopper-medium|d3rlpy-dt"]["200"], [0.2, 0.2])  # per action dimension
    table = (tmp_path / "parity.md").read_text()
    assert "| hopper-medium | dt | 2 | 15.0 ± 5.0 (2) | 40.0 ± 10.0 (2) |" in table
    assert (tmp_path / "parity.png").stat().st_size > 0


def test_spread_check_places_our_mean_against_both_bands():
    """Reference seeds 10, 20, 30: mean ± std (ddof 0) is 20 ± 8.165, the range 10..30. A mean of 11 is below the
    first band by 0.835 and inside the range; 35 is above both (by 6.835 and 5); 20 is inside both."""
    ref = {1000: [10.0, 20.0, 30.0], 2000: [10.0, 20.0, 30.0], 3000: [10.0, 20.0, 30.0], 4000: [5.0]}
    ours = {1000: [10.0, 12.0], 2000: [35.0], 3000: [19.0, 21.0], 4000: [1.0]}  # 4000: one reference seed, no spread
    md, data = parity.spread_check({("hopper-medium", parity.REFERENCE): ref, ("hopper-medium", "dt"): ours})
    check = data["hopper-medium|dt"]
    std = np.std([10.0, 20.0, 30.0])
    assert check[1000]["std_band"] == pytest.approx(11.0 - (20.0 - std)) and check[1000]["range_band"] == 0.0
    assert check[2000]["std_band"] == pytest.approx(35.0 - (20.0 + std)) and check[2000]["range_band"] == 5.0
    assert check[3000] == {"ours": 20.0, "std_band": 0.0, "range_band": 0.0} and 4000 not in check
    assert "| hopper-medium | dt | -0.8 / in | +6.8 / +5.0 | in / in |  | 2 / 3 of 3 |" in md


def test_d3rlpy_side_continues_from_its_checkpoint(tmp_path):
    """A d3rlpy run that finished at 2,000 updates continues from model_2000.d3 when --steps grows; the resumed
    part's loss log ("-from2000", counting from 0) lands at the right updates."""
    _fake_sides(tmp_path)
    logs = tmp_path / "d3rlpy" / "hopper-medium-seed0-logs"
    (logs / "parity-seed0" / "model_2000.d3").write_bytes(b"")
    data = tmp_path / "data"
    data.mkdir()
    (data / "hopper-medium.hdf5").write_bytes(b"")
    fake = tmp_path / "fake-python"  # stands in for the d3rlpy venv's python: records what it was asked to run
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    parity.main(["run", "--out", str(tmp_path), "--seeds", "0", "1", "--steps", "3000", "--agents",
                 "--d3rlpy-python", str(fake), "--jobs", "1"])  # fmt: skip
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 1  # seed 1 has no checkpoint to continue from and is left as it is, with a message
    assert f"--resume {logs / 'parity-seed0' / 'model_2000.d3'} --start-step 2000" in calls[0]
    assert "--steps 3000" in calls[0]
    (data / "halfcheetah-medium.hdf5").write_bytes(b"")  # --only leaves the other file's runs alone
    parity.main(["run", "--out", str(tmp_path), "--seeds", "0", "--steps", "3000", "--agents", "--only",
                 "halfcheetah-medium", "--d3rlpy-python", str(fake), "--jobs", "1"])  # fmt: skip
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 2 and "halfcheetah-medium.hdf5" in calls[1] and "--resume" not in calls[1]
    with pytest.raises(SystemExit, match="no such file.*there are halfcheetah-medium, hopper-medium"):
        parity.main(["run", "--out", str(tmp_path), "--only", "walker2d-medium"])

    resumed = logs / "parity-seed0-from2000"
    resumed.mkdir()
    (resumed / "model_500.d3").write_bytes(b"")
    (resumed / "loss.csv").write_text("1,100,0.3\n")
    assert parity.d3rlpy_checkpoint(logs, 2500) == resumed / "model_500.d3"
    assert parity.d3rlpy_checkpoint(logs, 2600) is None
    losses = parity.read_losses(tmp_path)[("hopper-medium", "d3rlpy-dt")]
    assert np.allclose(losses[2100], [0.1]) and np.allclose(losses[200], [0.2, 0.2])
