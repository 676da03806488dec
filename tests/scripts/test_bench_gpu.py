"""scripts/bench_gpu.py --smoke: every section runs at tiny sizes on the CPU and writes its JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ["bench_scan_backends.json", "bench_layer_vs_attention.json", "bench_update_graphs.json",
         "bench_ensemble.json", "bench_gpu_summary.json"]  # fmt: skip


@pytest.mark.slow
def test_smoke_writes_every_file(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--smoke", "--device", "cpu", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "bench_gpu_summary.json").read_text())
    assert [s["status"] for s in summary["sections"]] == ["ok"] * 4
    assert summary["smoke"] and summary["scan_fastest"] is None  # never a CUDA choice from a CPU run
    assert set(summary["update_ms"]) == {f"{a}_{m}" for a in ("mingru_stacked", "mingru_interleaved",
                                         "transformer_interleaved") for m in ("eager", "graphed")}  # fmt: skip
    ens = json.loads((tmp_path / "bench_ensemble.json").read_text())
    assert ens["seeds"] == 2 and len(ens["separate_processes"]) == 2 and ens["matrix_estimate"]["hours"] > 0
    scan = json.loads((tmp_path / "bench_scan_backends.json").read_text())
    assert [r["backend"] for r in scan["results"]] == ["cpu", "logspace"] and all(
        r["max_err"] < 1e-4 for r in scan["results"]
    )


def test_cuda_requested_without_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--device", "cuda", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode != 0 and "no CUDA device here" in out.stderr
