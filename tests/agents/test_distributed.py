"""DistributedDataParallel under torchrun: 2 CPU processes (gloo) on the tiny Hopper file.

One launch runs ``tests/ddp_worker``-style code (``WORKER`` below, written to a temp file) that imports the
trainer's DDP path, records each rank's final weights (by wrapping ``build_model``: instrumentation lives in the
test, not in the trainer) and also resumes a run under DDP. A second launch runs the documented CLI form.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.distributed import DistInfo, PeerError, fingerprint, init_from_env, process_group
from agents.trainer import load_model

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--env", "Hopper-v5", "--dim", "32", "--depth", "1", "--context-len", "5", "--batch-size", "8", "--lr", "1e-3",
    "--warmup-steps", "5", "--eval-episodes", "1", "--eval-envs", "1", "--eval-max-steps", "10", "--threads", "1",
    "--target-returns", "100", "--log-every", "10", "--histogram-every", "0", "--no-progress",
    "--final-eval-episodes", "1",
]  # fmt: skip

WORKER = """
import json, sys
from pathlib import Path

import agents.trainer as T
from agents.config import load_config
from agents.distributed import fingerprint, process_group

out, dataset = Path(sys.argv[1]), sys.argv[2]
models = []
build = T.build_model
T.build_model = lambda *a, **k: models.append(build(*a, **k)) or models[-1]  # keep each rank's model
base = [f"dataset=d4rl:{dataset}", "env=Hopper-v5", "dim=32", "depth=1", "context_len=5", "batch_size=8", "lr=1e-3",
        "warmup_steps=5", "eval_episodes=1", "final_eval_episodes=1", "eval_envs=1", "eval_max_steps=10", "threads=1",
        "target_returns=[100]", "log_every=10", "histogram_every=0", "progress=false", "checkpoint_every=10",
        "dropout=0.1"]
with process_group("cpu") as dist:
    report = {"rank": dist.rank, "world_size": dist.world_size}
    T.train(load_config(None, base + ["steps=30"]), out / f"full-rank{dist.rank}", dist=dist)
    report["full"] = fingerprint(models[-1])
    T.train(load_config(None, base + ["steps=20"]), out / "part", dist=dist)
    T.train(load_config(None, base + ["steps=30"]), out / "part", resume=True, dist=dist)
    report["resumed"] = fingerprint(models[-1])
(out / f"report{dist.rank}.json").write_text(json.dumps(report))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def loss_curve(run: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.value for e in acc.Scalars("train/loss")]


def test_ddp_two_ranks_stay_in_sync_and_resume_exactly(d4rl_file: Any, tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    proc = torchrun([str(tmp_path / "worker.py"), str(tmp_path), str(d4rl_file.path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"report{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # parameters identical across ranks, and equal to what rank 0 checkpointed
    assert reports[0]["full"] == reports[1]["full"]
    model, _, meta = load_model(tmp_path / "full-rank0")
    assert fingerprint(model) == reports[0]["full"] and meta["world_size"] == 2
    assert len(meta["sampler_rng_per_rank"]) == 2 and meta["sampler_rng_per_rank"][0] != meta["sampler_rng_per_rank"][1]
    # a DDP run stopped at step 20 and resumed under DDP ends bit-identical to the uninterrupted one (CPU, gloo)
    assert reports[0]["resumed"] == reports[1]["resumed"] == reports[0]["full"]
    # rank 0 alone writes: rank 1's run directory was never created
    assert (tmp_path / "full-rank0" / "results.json").is_file() and not (tmp_path / "full-rank1").exists()
    loss = loss_curve(tmp_path / "full-rank0")
    assert len(loss) == 3 and loss[-1] < loss[0], loss


def test_torchrun_cli(d4rl_file: Any, tmp_path: Path) -> None:
    """The documented form: torchrun ... run_rl.py train; one report on stdout, results.json as in one process."""
    out = tmp_path / "run"
    args = [str(ROOT / "run_rl.py"), "train", "--dataset", f"d4rl:{d4rl_file.path}", "--steps", "20", *TINY]
    proc = torchrun([*args, "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("normalized score") == 1 and proc.stdout.count("TensorBoard:") == 1, proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 20 and results["episodes"] == 1 and results["backbone"] == "mingru"
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "checkpoints", "config.yaml", "dataset.json", "evals.jsonl", "learning_curve.png", "results.json",
        "tb",
    ]  # fmt: skip
    assert len((out / "evals.jsonl").read_text().splitlines()) == 1
    # a bad input under torchrun: rank 0 reports it in one line, rank 1 stays quiet, both stop
    proc = torchrun([*args, "--out", str(out)], cwd=tmp_path)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: run directory {str(out)!r} already exists; pass --resume to continue it, --overwrite "
                      "to replace it, or choose another --out"], proc.stderr[-3000:]  # fmt: skip


def test_single_process_without_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with process_group("cpu") as dist:
        assert dist == DistInfo() and dist.is_main and not dist.is_distributed
        assert dist.all_mean(3.0) == 3.0 and dist.gather("x") == ["x"]
        dist.barrier()
        dist.agree(None)
        with pytest.raises(ValueError, match="boom"):
            dist.agree(ValueError("boom"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_env("cpu") == DistInfo()


def test_incomplete_torchrun_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR and MASTER_PORT unset; launch with torchrun"):
        init_from_env("cpu")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 but RANK='5'"):
        init_from_env("cpu")
    assert issubclass(PeerError, RuntimeError)


def test_fingerprint_sees_any_change() -> None:
    import torch

    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        b.bias[0] = torch.nextafter(b.bias[0], torch.tensor(1.0))
    assert fingerprint(a) != fingerprint(b)
