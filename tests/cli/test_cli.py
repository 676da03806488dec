"""run_rl.py: the documented train form, eval reproducing train's score, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runs import run_main

import run_rl

ROOT = Path(__file__).resolve().parents[2]
TINY_FLAGS = [
    "--dim", "16", "--depth", "1", "--context-len", "4", "--batch-size", "8", "--eval-max-steps", "10",
    "--eval-envs", "2", "--final-eval-episodes", "2", "--target-returns", "100", "--threads", "1", "--log-every", "10",
    "--no-progress",
]  # fmt: skip


def test_documented_train_form_and_eval_reproduces(d4rl_file: Any, tmp_path: Path) -> None:
    """The train form README documents, in a subprocess; then eval --checkpoint reproduces the recorded score."""
    out = tmp_path / "runs" / "x"
    cmd = [sys.executable, str(ROOT / "run_rl.py"), "train", "--dataset", f"d4rl:{d4rl_file.path}", "--env",
           "Hopper-v5", "--backbone", "mingru", "--steps", "20", "--eval-episodes", "2", "--out", str(out),
           "--seed", "3", *TINY_FLAGS]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "normalized score" in proc.stdout and "tensorboard --logdir" in proc.stdout
    train_res = json.loads((out / "results.json").read_text())
    assert train_res["steps"] == 20 and train_res["episodes"] == 2 and train_res["backbone"] == "mingru"

    ev = [sys.executable, str(ROOT / "run_rl.py"), "eval", "--checkpoint", str(out), "--episodes", "2",
          "--out", str(tmp_path / "ev")]  # fmt: skip
    proc = subprocess.run(ev, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    eval_res = json.loads((tmp_path / "ev" / "results.json").read_text())
    for key in ("return_mean", "return_std", "normalized_score_mean", "episodes", "acting_mode", "steps"):
        assert eval_res[key] == train_res[key], key


def test_resume_and_overwrite_flags(d4rl_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    base = ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--out", str(out), "--eval-episodes", "1", *TINY_FLAGS]
    assert run_main([*base, "--steps", "6", "--checkpoint-every", "3"], capsys)[0] == 0
    code, _, err = run_main([*base, "--steps", "6"], capsys)
    assert code == 2 and "already exists; pass --resume" in err
    code, out_text, _ = run_main(["train", "--out", str(out), "--resume", "--steps", "9"], capsys)
    assert code == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 9
    assert run_main([*base, "--steps", "3", "--overwrite"], capsys)[0] == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 3


def test_shape_mismatch_dataset(d4rl_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--env", "HalfCheetah-v5", "--out", str(tmp_path / "r")]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "expects (17,)" in err and "Traceback" not in err


def test_debug_shows_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="context_len must be >= 1"):
        run_rl.main(["train", "--context-len", "0", "--out", str(tmp_path / "r"), "--debug"])


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in (["--help"], ["train", "--help"], ["eval", "--help"], ["datasets", "--help"], ["collect", "--help"],
                ["bench", "--help"], ["bench", "agents", "--help"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            run_rl.main(cmd)
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run_rl.main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--context-len" in text and "DT: 20" in text and "--set KEY=VALUE" in text


def test_datasets_lists_local_minari(minari_datasets: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["datasets", "--root", str(minari_datasets.root)], capsys)
    assert code == 0 and minari_datasets.ours_id in out
    code, out, _ = run_main(["datasets", "--inspect", f"minari:{minari_datasets.ours_id}"], capsys)
    assert code == 0 and json.loads(out)["env_id"] == "Hopper-v5"


def test_datasets_export_writes_a_d4rl_file_and_keeps_an_existing_one(
    minari_datasets: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import h5py

    path = tmp_path / "hopper-tiny.hdf5"
    code, out, _ = run_main(["datasets", "--export", f"minari:{minari_datasets.ours_id}", str(path)], capsys)
    assert code == 0 and f"d4rl:{path}" in out
    rollouts = minari_datasets.rollouts  # the independent reference: the steps that were rolled out
    with h5py.File(path) as f:
        np.testing.assert_allclose(f["actions"][:], np.concatenate([r.actions for r in rollouts]))
        np.testing.assert_allclose(f["rewards"][:], np.concatenate([r.rewards for r in rollouts]))
        np.testing.assert_array_equal(f["terminals"][:].sum(), sum(r.terminated for r in rollouts))
    code, out, _ = run_main(["datasets", "--inspect", f"d4rl:{path}"], capsys)
    assert code == 0 and json.loads(out)["episodes"] == len(rollouts)

    path.write_bytes(b"mine")
    code, _, err = run_main(["datasets", "--export", f"minari:{minari_datasets.ours_id}", str(path)], capsys)
    assert code != 0 and "exists" in err and "--overwrite" in err and path.read_bytes() == b"mine"
    code, _, _ = run_main(
        ["datasets", "--export", f"minari:{minari_datasets.ours_id}", str(path), "--overwrite"], capsys
    )
    assert code == 0 and h5py.is_hdf5(path)


def test_bench_agents_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "agents", "--backbones", "mingru", "transformer", "--layouts", "stacked", "--contexts", "4",
            "--batch-size", "4", "--repeat", "1", "--dim", "16", "--depth", "1", "--acting-steps", "2",
            "--acting-envs", "2", "--acting-context", "4", "--threads", "1", "--out", str(out)]  # fmt: skip
    code, text, _ = run_main(argv, capsys)
    assert code == 0 and "ms_per_step" in text
    data = json.loads(out.read_text())
    assert len(data["train"]) == 2 and {r["cuda_graphs"] for r in data["train"]} == {"off"}
    for r in data["train"]:  # an update costs at least the forward pass's 2 FLOPs per weight and token
        assert r["gflop_per_step"] * 1e9 > 2 * 4 * 4 * 16 * 16
    assert {(r["backbone"], r["mode"]) for r in data["acting"]} == {
        ("mingru", "window"),
        ("mingru", "recurrent"),
        ("transformer", "window"),
    }
