"""Smoke test of the benchmark CLI with a tiny budget (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from minrnn.bench import main


def test_bench_writes_json_png_and_table(tmp_path: Path, capsys) -> None:
    argv = ["--T", "8", "16", "--B", "2", "--D", "8", "--reps", "1", "--window", "4", "--step-batch", "2"]
    argv += ["--cases", "scan_cpu", "scan_triton", "scan_logspace_fp32", "mingru", "lstm", "step", "--step-iters", "1"]
    argv += ["--threads", "1", "--out", str(tmp_path)]
    threads = torch.get_num_threads()
    try:
        result = main(argv)
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert {r["case"] for r in saved["results"]} == {"scan_cpu", "scan_logspace_fp32", "mingru", "lstm"}
    assert all(r["ms"] > 0 and r["Melem_per_s"] > 0 for r in saved["results"])
    assert "scan_triton: skipped" in saved["notes"][0]
    assert set(result["step_vs_window"]) == {"mingru", "minlstm", "gru", "lstm", "transformer"}
    assert "| scan_cpu |" in capsys.readouterr().out
