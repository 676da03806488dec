"""Nothing a user made is lost: one writer per run directory, --overwrite that only moves runs aside, a --resume
that applies what it records and refuses what it cannot apply, Ctrl-C that saves, and options checked first.

After every refusal the run's files are read back: nothing deleted, nothing changed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runs import TINY_TRAIN, run_main

import run_rl
from agents.runlock import LOCK_NAME, RunLock

ROOT = Path(__file__).resolve().parents[2]
TINY = [*TINY_TRAIN, "--warmup-steps", "2"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the lock file aside) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture(scope="module")
def trained(d4rl_file: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 6-step run (checkpoints at 0, 3 and 6), copied by each test that changes it."""
    run = tmp_path_factory.mktemp("safety") / "run"
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", *TINY, "--steps", "6", "--checkpoint-every", "3",
            "--out", str(run)]  # fmt: skip
    assert run_rl.main(argv) == 0
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


# --- one writer --------------------------------------------------------------------------------------------------
def _latest_step(run: Path) -> int | None:
    pointer = run / "checkpoints" / "latest"
    return int(pointer.read_text().strip().removeprefix("step_")) if pointer.is_file() else None


def test_second_writer_is_refused_and_ctrl_c_saves_the_current_step(d4rl_file: Any, tmp_path: Path) -> None:
    """A training process holds its run: a second train, a --resume and an eval into it stop at once naming its
    PID. Then Ctrl-C (SIGINT) writes a checkpoint at the step it reached, prints the resume command, exits 130."""
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run_rl.py"), "train", "--dataset", f"d4rl:{d4rl_file.path}", "--out",
           str(run), "--steps", "100000", "--checkpoint-every", "100000", *TINY]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 300
        while _latest_step(run) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the step-0 checkpoint: training is under way
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert _latest_step(run) == 0  # a new run has a checkpoint from its start
        others = {
            "train": ["train", "--dataset", f"d4rl:{d4rl_file.path}", "--out", str(run), *TINY],
            "resume": ["train", "--out", str(run), "--resume"],
            "eval": ["eval", "--checkpoint", str(run), "--out", str(run), "--overwrite"],
        }
        for name, argv in others.items():
            second = subprocess.run([sys.executable, str(ROOT / "run_rl.py"), *argv], capture_output=True, text=True,
                                    cwd=tmp_path, env=env, timeout=300)  # fmt: skip
            assert second.returncode == 2, (name, second.stderr)
            assert f"is in use by another process (PID {proc.pid})" in second.stderr, (name, second.stderr)
        assert proc.poll() is None  # the first writer carries on
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted by SIGINT (Ctrl-C) at step" in stdout and f"--out {run} --resume" in stdout, stdout
    step = int(stdout.split("at step ")[1].split(";")[0])
    assert step > 0 and _latest_step(run) == step and not (run / "results.json").exists()
    assert not list(run.parent.glob("run.old-*"))  # the refused eval --overwrite moved nothing


def test_lock_is_released_and_reports_its_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        with pytest.raises(FileExistsError, match=rf"is in use by another process \(PID {os.getpid()}, this process"):
            RunLock(tmp_path).acquire()
        assert lock.held
    with RunLock(tmp_path) as again:  # released on exit
        assert again.held


def test_evals_in_the_same_second_get_their_own_folders(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")  # every eval in one second
    (run / "evals" / "20260101-000000-recurrent").mkdir(parents=True)  # another eval took this second's name
    argv = ["eval", "--checkpoint", str(run), "--eval-episodes", "1", "--eval-max-steps", "3"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    results = list((run / "evals").glob("*/results.json"))
    assert len(results) == 1 and results[0].parent.name.endswith("-recurrent-2")


def test_eval_into_a_locked_folder_is_refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev"
    out.mkdir()
    with RunLock(out):
        code, _, err = run_main(["eval", "--checkpoint", str(run), "--out", str(out)], capsys)
    assert code == 2 and "is in use by another process" in err
    assert snapshot(out) == {}


# --- --overwrite --------------------------------------------------------------------------------------------------
def test_eval_never_overwrites_the_run_it_evaluates(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run)
    code, _, err = run_main(["eval", "--checkpoint", str(run), "--out", str(run)], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and "--resume" not in err, err
    code, _, err = run_main(["eval", "--checkpoint", str(run), "--out", str(run), "--overwrite"], capsys)
    assert code == 2 and "which this command reads; it is not replaced" in err and "step_0000006" in err, err
    assert snapshot(run) == before and not list(run.parent.glob("run.old-*"))


def test_train_overwrite_refuses_a_folder_that_is_not_a_run(
    d4rl_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder holding the dataset being read is not a run: --overwrite refuses it, naming what it holds."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(d4rl_file.path, folder / "hopper.hdf5")
    (folder / "notes.txt").write_text("mine")
    before = snapshot(folder)
    argv = ["train", "--dataset", f"d4rl:{folder / 'hopper.hdf5'}", *TINY, "--steps", "2", "--out", str(folder)]
    code, _, err = run_main([*argv, "--overwrite"], capsys)
    assert code == 2 and "is not a run directory of this toolkit" in err and "hopper.hdf5, notes.txt" in err, err
    assert snapshot(folder) == before


def test_train_overwrite_keeps_a_run_holding_its_dataset(
    run: Path, d4rl_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(d4rl_file.path, run / "hopper.hdf5")
    before = snapshot(run)
    argv = ["train", "--dataset", f"d4rl:{run / 'hopper.hdf5'}", *TINY, "--steps", "2", "--out", str(run)]
    code, _, err = run_main([*argv, "--overwrite"], capsys)
    assert code == 2 and "hopper.hdf5', which this command reads" in err, err
    assert snapshot(run) == before


def test_train_overwrite_moves_the_old_run_aside(run: Path, d4rl_file: Any, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(run)
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", *TINY, "--steps", "2", "--out", str(run), "--overwrite"]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    (aside,) = run.parent.glob("run.old-*")
    assert snapshot(aside) == before and f"moved the existing {run} to {aside}" in err
    assert json.loads((run / "results.json").read_text())["steps"] == 2


# --- --resume -----------------------------------------------------------------------------------------------------
def _state(run: Path) -> dict[str, Any]:
    """The latest checkpoint's state.json."""
    return json.loads((run / "checkpoints" / f"step_{_latest_step(run):07d}" / "state.json").read_text())


def test_resume_applies_lr_and_weight_decay_and_logs_the_change(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--out", str(run), "--resume", "--steps", "8", "--set", "lr=0.01", "--weight-decay", "0.5"]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert "at step 6 with: steps 6 -> 8, lr 0.0001 -> 0.01, weight_decay 0.0001 -> 0.5" in err, err
    group = _state(run)["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.01) and group["initial_lr"] == 0.01 and group["weight_decay"] == 0.5
    assert _state(run)["scheduler"]["base_lrs"] == [0.01]
    rows = [json.loads(line) for line in (run / "changes.jsonl").read_text().splitlines()]
    assert rows == [{"step": 6, "changes": {"lr": [0.0001, 0.01], "weight_decay": [0.0001, 0.5], "steps": [6, 8]}}]
    assert "lr: 0.01" in (run / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "3"], "is already at step 6; steps=3 is below it (a run cannot go back): pass --steps N"),
        (["--seed", "5"], "other data or seed: seed=5 (checkpoint: 0); drop those overrides to resume it"),
        (["--dim", "32", "--seed", "5"], "a different model: dim=32 (checkpoint: 16) and other data or seed: seed=5"),
    ],
)
def test_refused_resume_changes_no_file(
    run: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(run)
    code, _, err = run_main(["train", "--out", str(run), "--resume", *extra], capsys)
    assert code == 2 and message in err, err
    assert snapshot(run) == before


def test_resume_on_other_data_is_refused(
    run: Path, d4rl_file: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another file of the same env, another env's file, and the same file with other content: each refused."""
    import h5py

    before = snapshot(run)
    other = tmp_path / "other.hdf5"
    shutil.copy(d4rl_file.path, other)
    code, _, err = run_main(["train", "--out", str(run), "--resume", "--dataset", f"d4rl:{other}"], capsys)
    assert code == 2 and f"other data or seed: dataset='d4rl:{other}' (checkpoint: 'd4rl:{d4rl_file.path}')" in err
    argv = ["train", "--out", str(run), "--resume", "--dataset", f"d4rl:{other}", "--env", "Walker2d-v5"]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "Traceback" not in err and ("env=" in err or "expects" in err), err
    changed = tmp_path / "changed" / d4rl_file.path.name
    changed.parent.mkdir()
    shutil.copy(d4rl_file.path, changed)
    with h5py.File(changed, "r+") as f:
        f["observations"][0] = f["observations"][0] + 5.0
    saved = (run / "config.yaml").read_text().replace(str(d4rl_file.path), str(changed))
    shutil.copytree(run, tmp_path / "moved")
    (tmp_path / "moved" / "config.yaml").write_text(saved)
    state = next((tmp_path / "moved" / "checkpoints").glob("step_0000006/state.json"))
    meta = json.loads(state.read_text())
    meta["config"]["dataset"] = f"d4rl:{changed}"
    state.write_text(json.dumps(meta))
    code, _, err = run_main(["train", "--out", str(tmp_path / "moved"), "--resume"], capsys)
    assert code == 2 and f"the dataset d4rl:{changed} has changed since the run started" in err, err
    assert snapshot(run) == before


# --- every way out saves ------------------------------------------------------------------------------------------
def test_final_checkpoint_is_written_before_the_final_evaluation(
    d4rl_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crash in the final evaluation keeps the last step; --resume then evaluates those weights again."""
    import agents.trainer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr(agents.trainer, "evaluate_model", broken)
    run = tmp_path / "run"
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", *TINY, "--steps", "4", "--out", str(run)]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "evaluation crashed" in err
    assert _latest_step(run) == 4
    monkeypatch.undo()
    code, _, err = run_main(["train", "--out", str(run), "--resume"], capsys)
    assert code == 0, err
    assert json.loads((run / "results.json").read_text())["steps"] == 4


def test_a_run_that_fails_before_its_first_update_can_be_resumed(
    d4rl_file: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state that neither --resume nor a new run accepts: a run has a checkpoint from step 0."""
    import agents.trainer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("update crashed")

    monkeypatch.setattr(agents.trainer, "compute_loss", broken)  # the update crashes
    run = tmp_path / "run"
    argv = ["train", "--dataset", f"d4rl:{d4rl_file.path}", *TINY, "--steps", "2", "--out", str(run)]
    assert run_main(argv, capsys)[0] == 2
    assert _latest_step(run) == 0
    monkeypatch.undo()
    code, _, err = run_main(["train", "--out", str(run), "--resume"], capsys)
    assert code == 0, err


# --- options checked before anything runs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--episodes", "0"], "--eval-episodes must be >= 1, got 0"),
        (["--envs", "0"], "--eval-envs must be >= 1, got 0"),
        (["--max-steps", "0"], "--eval-max-steps must be >= 1, got 0"),
        (["--video", "--video-size", "321x240"], "--video-size 321x240: width and height must be multiples of 16"),
        (["--video", "--video-size", "16000x16000"], "from 16 to 4096"),
        (["--targets", "nan"], "a target is a finite number or data_max, got 'nan'"),
    ],
)
def test_eval_checks_its_options_first(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Refused before any checkpoint is read: the checkpoint here does not even exist."""
    code, _, err = run_main(["eval", "--checkpoint", str(tmp_path / "none"), *extra], capsys)
    assert code == 2 and message in err, err


def test_train_refuses_a_target_that_is_not_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["train", "--target-returns", "nan", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "target_returns must be finite numbers or 'data_max', got [nan]" in err, err
    assert not (tmp_path / "r").exists()


def test_eval_takes_trains_names_for_the_same_things() -> None:
    args = run_rl.parse_args(["eval", "--checkpoint", "r", "--eval-episodes", "3", "--eval-envs", "2",
                              "--target-returns", "100", "data_max", "--eval-max-steps", "7",
                              "--eval-seed", "4"])  # fmt: skip
    old = run_rl.parse_args(["eval", "--checkpoint", "r", "--episodes", "3", "--envs", "2", "--targets", "100",
                             "data_max", "--max-steps", "7", "--seed", "4"])  # fmt: skip
    assert vars(args) == vars(old)
    assert (args.episodes, args.envs, args.targets, args.max_steps, args.seed) == (3, 2, [100.0, "data_max"], 7, 4)


@pytest.mark.parametrize("command", [["--help"], ["train", "--help"], ["eval", "--help"]])
def test_help_imports_no_torch_and_prints_one_usage(command: list[str]) -> None:
    code = (
        "import sys, contextlib, io, run_rl\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):\n"
        f"    run_rl.main({command!r})\n"
        "print(buf.getvalue().count('usage:'), 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert proc.stdout.split() == ["1", "False"], proc.stdout + proc.stderr


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents import checkpoint

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(OSError, match=f"No space left on device while writing {tmp_path / 'config.yaml'}"):
        checkpoint.atomic_write_text(tmp_path / "config.yaml", "steps: 2\n")
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_config_names_match_minrnn() -> None:
    """agents.config spells out minrnn's names (so reading a config needs no torch); they must stay the same."""
    from agents import config
    from minrnn.blocks import ACTIVATIONS, BACKBONES
    from minrnn.scan import BACKENDS

    assert config.BACKBONES == BACKBONES and config.ACTIVATIONS == tuple(ACTIVATIONS)
    assert config.SCAN_BACKENDS == BACKENDS
