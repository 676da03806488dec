"""The Triton scan under TRITON_INTERPRET=1 (CPU), in a subprocess: the variable must be set before triton loads."""

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
    from minrnn import MinGRU, MinLSTM
    from minrnn.scan import scan
    from minrnn_reference import ref_mingru, ref_scan

    gen = torch.Generator().manual_seed(0)
    cases = [("triton", 2, 1, 3), ("triton", 2, 13, 5), ("triton", 1, 37, 40)]  # odd T and D: masks, any-T loops
    # chunked: T shorter than a tile, exactly one, one plus a step, several with a ragged end; D over a block
    cases += [("triton_chunked", 2, s, d) for s, d in [(1, 3), (13, 5), (32, 17), (33, 4), (100, 20)]]
    for backend, bsz, steps, dim in cases:
        for dtype, tol in [(torch.float32, 1e-5), (torch.float64, 1e-10)]:
            a = torch.rand(bsz, steps, dim, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
            b = torch.randn(bsz, steps, dim, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
            h0 = torch.rand(bsz, dim, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
            for init in (h0, None):
                h = scan(a, b, init, backend=backend)
                want = ref_scan(a, b, init)
                assert h.dtype == dtype and (h.double() - want).abs().max() <= tol, (backend, bsz, steps, dim, dtype)
                dy = torch.randn(h.shape, generator=gen, dtype=torch.float64)
                ins = (a, b, h0) if init is not None else (a, b)
                got = torch.autograd.grad(h, ins, dy.to(dtype))
                exp = torch.autograd.grad(want, ins, dy)
                for g, e in zip(got, exp):
                    assert (g.double() - e).abs().max() <= 100 * tol, ("grad", backend, bsz, steps, dim, dtype)

    a = torch.rand(2, 6, 3, dtype=torch.float64, generator=gen).requires_grad_()
    b = torch.randn(2, 6, 3, dtype=torch.float64, generator=gen).requires_grad_()
    h0 = torch.rand(2, 3, dtype=torch.float64, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, h0: scan(a, b, h0, backend="triton"), (a, b, h0))

    for backend in ("triton", "triton_chunked"):  # bf16 inputs: fp32 accumulation, bf16 output
        a = torch.rand(2, 50, 8, generator=gen).clamp(0.5, 0.99)
        b = torch.rand(2, 50, 8, generator=gen)
        h = scan(a.bfloat16(), b.bfloat16(), backend=backend)
        assert h.dtype == torch.bfloat16 and torch.isfinite(h).all()
        assert (h.double() - ref_scan(a.bfloat16(), b.bfloat16())).abs().max() < 0.05

    # layers with padding on the triton back-end
    torch.manual_seed(0)
    for cls in (MinGRU, MinLSTM):
        layer = cls(4, 6)
        x = torch.randn(2, 9, 4)
        mask = torch.ones(2, 9, dtype=torch.bool)
        mask[0, :3] = False
        h_t, _ = layer(x, mask=mask, backend="triton")
        h_s, _ = layer(x, mask=mask, backend="sequential")
        assert (h_t - h_s).abs().max() <= 1e-5
    x = torch.randn(2, 9, 4)
    layer = MinGRU(4, 6)
    want = ref_mingru(x, layer.proj.weight, layer.proj.bias)
    assert (layer(x, backend="triton")[0].double() - want).abs().max() <= 1e-5
    print("TRITON-INTERPRET-OK")
    """
)


def test_triton_kernel_under_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "TRITON-INTERPRET-OK" in proc.stdout, proc.stderr[-3000:]
