"""End-to-end training per backbone, TensorBoard events, results.json, resume, train modes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.checkpoint import load_checkpoint
from agents.config import TrainConfig
from agents.rundir import prepare_run_dir
from agents.trainer import load_model, train

RESULT_KEYS = {
    "normalized_score_mean", "normalized_score_std", "return_mean", "return_std", "episodes", "score_reference",
    "steps", "wall_time_s", "backbone", "acting_mode",
}  # fmt: skip


def scalars(run: Path) -> dict[str, list[float]]:
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    out = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["_histograms"] = acc.Tags()["histograms"]
    return out


@pytest.mark.parametrize(
    ("backbone", "layout", "acting"),
    [
        ("mingru", "interleaved", "recurrent"),
        ("mingru", "stacked", "window"),
        ("minlstm", "stacked", "recurrent"),
        ("gru", "stacked", "recurrent"),
        ("lstm", "interleaved", "window"),
        ("transformer", "interleaved", "window"),
    ],
)
def test_end_to_end(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, backbone: str, layout: str, acting: str
) -> None:
    vector = "async" if acting == "recurrent" else "sync"  # "auto" would pick sync on a 2-core machine
    cfg = tiny_config(backbone=backbone, layout=layout, acting_mode=acting, steps=150, eval_vector=vector)
    run = tmp_path / "run"
    res = train(cfg, run)
    assert RESULT_KEYS <= set(res)
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["steps"] == 150 and on_disk["backbone"] == backbone and on_disk["acting_mode"] == acting
    assert on_disk["episodes"] == 2 and on_disk["score_reference"] == "d4rl"
    assert {t["vector"] for t in on_disk["per_target"].values()} == {vector}
    assert np.isfinite(on_disk["normalized_score_mean"])
    assert on_disk["batch_size"] == cfg.batch_size and on_disk["machine"]["cores"] >= 1
    assert on_disk["machine"]["torch"] == torch.__version__ and "gpu" not in on_disk["machine"]
    tb = scalars(run)
    for tag in (
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "perf/steps_per_s",
        "perf/tokens_per_s",
        "eval/return_mean",
        "eval/normalized_score",
        "eval/normalized_score_best",
        "eval/episode_length",
    ):
        assert tag in tb, tag
    loss = tb["train/loss"]
    assert len(loss) == 15 and np.mean(loss[-3:]) < 0.7 * loss[0], loss
    assert {"train/action_pred", "eval/actions"} <= set(tb["_histograms"])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "latest").is_file()


def test_resume_matches_uninterrupted_run(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """Train 40 steps straight; or 20, stop, resume to 40: identical weights, step count continues."""
    cfg = tiny_config(backbone="mingru", layout="stacked", dropout=0.1, steps=40, checkpoint_every=20, eval_episodes=1,
                      eval_envs=1, eval_max_steps=5)  # fmt: skip
    full = tmp_path / "full"
    train(cfg, full)
    part = tmp_path / "part"
    train(cfg.__class__(**{**cfg.__dict__, "steps": 20}), part)
    assert load_checkpoint(part).meta["step"] == 20
    res = train(cfg, part, resume=True)
    assert res["steps"] == 40 and load_checkpoint(part).meta["step"] == 40
    a, _, _ = load_model(full)
    b, _, _ = load_model(part)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert res["return_mean"] == json.loads((full / "results.json").read_text())["return_mean"]
    assert scalars(part)["train/loss"] == pytest.approx(scalars(full)["train/loss"], rel=0, abs=0)


def test_resume_rejects_a_different_model(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    cfg = tiny_config(steps=5, eval_max_steps=3, eval_episodes=1, eval_envs=1)
    train(cfg, tmp_path / "r")
    with pytest.raises(ValueError, match=r"trained with a different model: backbone='lstm' \(checkpoint: 'mingru'\)"):
        train(cfg.__class__(**{**cfg.__dict__, "backbone": "lstm", "steps": 10}), tmp_path / "r", resume=True)


@pytest.mark.parametrize("mode", ["episode_start", "segments", "burn_in"])
def test_train_modes_run(tiny_config: Callable[..., TrainConfig], tmp_path: Path, mode: str) -> None:
    cfg = tiny_config(train_mode=mode, segment_len=40, burn_in=6, steps=30, acting_mode="recurrent",
                      eval_episodes=1, eval_envs=1, eval_max_steps=5)  # fmt: skip
    res = train(cfg, tmp_path / mode)
    assert res["train_mode"] == mode and res["steps"] == 30
    loss = scalars(tmp_path / mode)["train/loss"]
    assert loss[-1] < loss[0]


def test_run_dir_is_never_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists; pass --resume to continue it, --overwrite"):
        prepare_run_dir(run, resume=False, overwrite=False)
    assert (run / "precious.txt").read_text() == "keep"
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        prepare_run_dir(run, resume=True, overwrite=False)
    prepare_run_dir(run, resume=False, overwrite=True)
    assert not (run / "precious.txt").exists()


def test_unwritable_run_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write to run directory"):
        prepare_run_dir(blocker / "run", resume=False, overwrite=False)


def test_kill9_then_resume_matches_uninterrupted(d4rl_file: object, tmp_path: Path) -> None:
    """kill -9 a training process mid-run; --resume from its last checkpoint ends bit-identical to a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    flags = ["--dataset", f"d4rl:{d4rl_file.path}", "--dim", "16", "--depth", "1", "--context-len", "4",  # type: ignore[attr-defined]
             "--batch-size", "8", "--eval-episodes", "1", "--final-eval-episodes", "1", "--eval-envs", "1",
             "--eval-max-steps", "5", "--target-returns", "100", "--threads", "1", "--no-progress",
             "--dropout", "0.1"]  # fmt: skip
    cli = [sys.executable, str(root / "run_rl.py"), "train"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cli, *flags, "--out", str(killed), "--steps", "100000", "--checkpoint-every", "5"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)  # let it get part-way through later steps or saves
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    stopped_at = load_checkpoint(killed).meta["step"]
    assert 0 < stopped_at < 60
    done = subprocess.run([*cli, "--out", str(killed), "--resume", "--steps", "60"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    clean = tmp_path / "clean"
    done = subprocess.run([*cli, *flags, "--out", str(clean), "--steps", "60"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    a, _, _ = load_model(killed)
    b, _, _ = load_model(clean)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_same_seed_same_losses_on_cpu(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """Determinism: same seed and config -> identical losses and weights; another seed differs."""
    cfg = tiny_config(dropout=0.1, steps=20, log_every=2, eval_episodes=1, eval_envs=1, eval_max_steps=3)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(cfg.__class__(**{**cfg.__dict__, "seed": seed}), tmp_path / name)
    a, b, c = (scalars(tmp_path / n)["train/loss"] for n in "abc")
    assert a == b and a != c
    from agents.distributed import fingerprint

    assert fingerprint(load_model(tmp_path / "a")[0]) == fingerprint(load_model(tmp_path / "b")[0])


def test_resume_on_another_world_size_rederives_rngs(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint from 2 ranks resumed by 1 process: streams re-derived from (seed, rank, step), with a warning."""
    from agents.distributed import DistInfo
    from agents.resume import restore_rng_states

    cfg = tiny_config(steps=4, eval_max_steps=3, eval_episodes=1, eval_envs=1)
    train(cfg, tmp_path / "r")
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.meta["world_size"] == 1 and set(ckpt.rng) == {"torch_cpu.0"}
    rng = restore_rng_states(ckpt, cfg, DistInfo(), torch.device("cpu"), 4)
    assert rng is not None and rng.bit_generator.state == ckpt.meta["sampler_rng_per_rank"][0]
    ckpt.meta["world_size"] = 2
    rng = restore_rng_states(ckpt, cfg, DistInfo(), torch.device("cpu"), 4)
    want = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0, 4]))
    assert rng.bit_generator.state == want.bit_generator.state
    assert "checkpoint written by 2 process(es), resuming on 1" in capsys.readouterr().err


def test_training_does_not_import_dataset_generation() -> None:
    """The Decision agents never import agents.behaviour (SAC, recipes); staleness comes through envs.provenance."""
    import subprocess
    import sys

    code = (
        "import sys, agents.trainer, agents.evaluation, agents.policy, agents.checkpoint; "
        "print(sorted(m for m in sys.modules if m.startswith('agents.behaviour')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
