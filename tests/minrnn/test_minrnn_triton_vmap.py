"""The Triton scan under ``torch.func.vmap`` (its vmap rule folds the mapped dim into the batch), as
agents/ensemble.py uses it for N seeds; under TRITON_INTERPRET=1 in a subprocess (set before triton loads)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch.func import vmap
    from minrnn.scan import scan

    gen = torch.Generator().manual_seed(0)
    for backend in ("triton", "triton_chunked"):
        a = torch.rand(3, 2, 9, 5, generator=gen, dtype=torch.float64).requires_grad_()
        b = torch.randn(3, 2, 9, 5, generator=gen, dtype=torch.float64).requires_grad_()
        h0 = torch.rand(2, 5, generator=gen, dtype=torch.float64).requires_grad_()  # not mapped: shared by the 3
        for init in (h0, None):
            got = vmap(lambda a, b: scan(a, b, init, backend=backend))(a, b)  # (3, 2, 9, 5)
            want = torch.stack([scan(a[i], b[i], init, backend="sequential") for i in range(3)])
            assert (got - want).abs().max() < 1e-10, backend
            ins = (a, b) if init is None else (a, b, h0)
            dy = torch.randn(got.shape, generator=gen, dtype=torch.float64)
            for g, e in zip(torch.autograd.grad(got, ins, dy), torch.autograd.grad(want, ins, dy)):
                assert (g - e).abs().max() < 1e-10, ("grad", backend)
        h0s = torch.rand(3, 2, 5, generator=gen, dtype=torch.float64)  # mapped h0 too
        got = vmap(lambda a, b, h: scan(a, b, h, backend=backend))(a, b, h0s)
        want = torch.stack([scan(a[i], b[i], h0s[i], backend="sequential") for i in range(3)])
        assert (got - want).abs().max() < 1e-10, backend
    print("OK")
    """
)


def test_triton_scan_under_vmap() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
