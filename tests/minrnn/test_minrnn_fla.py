"""The ``fla`` / ``fla_fused`` scan back-ends (flash-linear-attention's HGRN kernels) against the float64 reference.

- ``fused_recurrent_hgrn`` runs on the CPU under TRITON_INTERPRET=1 (in a subprocess: the variable must be set before
  triton loads; the autotuner's benchmark needs a GPU driver, so it is replaced by "take the first config").
- ``chunk_hgrn`` does not run in the interpreter; the mapping onto it (g = log a, h0 folded into x_0) is checked with
  fla's own pure-torch reference ``naive_recurrent_hgrn`` (fla/ops/hgrn/naive.py) standing in for the kernel, and
  the real kernel on CUDA only.
- Both kernels (forward and backward) compile for sm_90 here with Triton's bundled ptxas, as
  test_minrnn_triton_compile.py does for ours: the only CPU-side check of the chunked kernel's code.
- Without fla installed: a clear error naming the extra; ``auto`` on CUDA reads the measured fastest back-end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from minrnn_reference import ref_mingru, ref_scan

from minrnn import scan_fla as sf
from minrnn.scan import cuda_auto_backend, resolve_backend, scan

ROOT = Path(__file__).resolve().parents[2]
needs_fla = pytest.mark.skipif(not sf.has_fla(), reason="flash-linear-attention (fla-core) not installed")


def _grads_match(backend_fn, gen: torch.Generator, steps: int, dim: int, with_h0: bool, tol: float) -> None:
    a = torch.rand(2, steps, dim, generator=gen).requires_grad_()
    b = torch.randn(2, steps, dim, generator=gen).requires_grad_()
    h0 = torch.rand(2, dim, generator=gen).requires_grad_() if with_h0 else None
    h = backend_fn(a, b, h0)
    want = ref_scan(a, b, h0)
    assert h.dtype == torch.float32 and (h.double() - want).abs().max() <= tol
    ins = (a, b, h0) if with_h0 else (a, b)
    dy = torch.randn(h.shape, generator=gen)
    for got, exp in zip(torch.autograd.grad(h, ins, dy), torch.autograd.grad(want, ins, dy.double())):
        assert (got.double() - exp).abs().max() <= 10 * tol


@needs_fla
def test_chunk_mapping_with_fla_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """``scan_fla(fused=False)`` maps onto chunk_hgrn's documented semantics (fla's naive reference as the kernel)."""
    from fla.ops.hgrn.naive import naive_recurrent_hgrn

    def fake_chunk(x, g, initial_state=None, output_final_state=False):
        assert initial_state is None  # h0 is folded into x_0: chunk_hgrn's backward drops d(initial_state)
        return naive_recurrent_hgrn(x, g, initial_state, output_final_state)

    monkeypatch.setattr(sf, "_kernels", lambda: (fake_chunk, None))
    gen = torch.Generator().manual_seed(0)
    for steps, with_h0 in [(1, True), (13, False), (40, True)]:
        _grads_match(lambda a, b, h0: sf.scan_fla(a, b, h0), gen, steps, 5, with_h0, 1e-5)
    a0 = torch.zeros(1, 3, 2)  # a = 0 exactly: log a is clamped, the state is reset, gradients stay finite
    b0 = torch.ones(1, 3, 2, requires_grad=True)
    h = sf.scan_fla(a0, b0, torch.ones(1, 2))
    h.sum().backward()
    assert torch.equal(h, torch.ones(1, 3, 2)) and torch.isfinite(b0.grad).all()


FUSED_SCRIPT = textwrap.dedent(
    """
    import torch
    import triton.runtime.autotuner as autotuner
    autotuner.Autotuner._bench = lambda self, *args, config, **kw: [0.0, 0.0, 0.0]  # no GPU to time configs on
    from minrnn import MinGRU
    from minrnn.scan import scan
    from minrnn_reference import ref_mingru, ref_scan

    gen = torch.Generator().manual_seed(0)
    for steps, dim in [(1, 3), (13, 5), (37, 40)]:
        a = torch.rand(2, steps, dim, generator=gen).requires_grad_()
        b = torch.randn(2, steps, dim, generator=gen).requires_grad_()
        h0 = torch.rand(2, dim, generator=gen).requires_grad_()
        for init in (h0, None):
            h = scan(a, b, init, backend="fla_fused")
            want = ref_scan(a, b, init)
            assert h.dtype == torch.float32 and (h.double() - want).abs().max() <= 1e-5, (steps, dim)
            ins = (a, b, h0) if init is not None else (a, b)
            dy = torch.randn(h.shape, generator=gen)
            for g, e in zip(torch.autograd.grad(h, ins, dy), torch.autograd.grad(want, ins, dy.double())):
                assert (g.double() - e).abs().max() <= 1e-4, ("grad", steps, dim)
    torch.manual_seed(0)
    layer = MinGRU(4, 6)
    x, mask = torch.randn(2, 9, 4), torch.ones(2, 9, dtype=torch.bool)
    mask[0, :3] = False
    h, h_last = layer(x, mask=mask, backend="fla_fused")
    want = ref_mingru(x, layer.proj.weight, layer.proj.bias, mask=mask)
    assert (h.double() - want).abs().max() <= 1e-5 and torch.equal(h_last, h[:, -1])
    print("OK")
    """
)


@needs_fla
def test_fused_kernel_under_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'minrnn'}"}
    out = subprocess.run([sys.executable, "-c", FUSED_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


@needs_fla
@pytest.mark.skipif(not torch.cuda.is_available(), reason="chunk_hgrn does not run under TRITON_INTERPRET; needs CUDA")
@pytest.mark.parametrize("backend", ["fla", "fla_fused"])
def test_kernels_on_cuda(backend: str) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    for steps in (1, 127, 128, 129, 1000):
        a = torch.rand(3, steps, 96, device="cuda", generator=gen).requires_grad_()
        b = torch.randn(3, steps, 96, device="cuda", generator=gen).requires_grad_()
        h0 = torch.rand(3, 96, device="cuda", generator=gen).requires_grad_()
        h = scan(a, b, h0, backend=backend)
        want = ref_scan(a, b, h0)
        assert (h.double() - want).abs().max() <= 1e-4, steps
        dy = torch.randn(h.shape, device="cuda", generator=gen)
        for g, e in zip(torch.autograd.grad(h, (a, b, h0), dy), torch.autograd.grad(want, (a, b, h0), dy.double())):
            assert (g.double() - e).abs().max() <= 1e-3 * (1 + e.abs().max()), ("grad", steps)
    x = torch.randn(2, 50, 8, device="cuda")
    from minrnn import MinGRU

    layer = MinGRU(8, 16).cuda()
    want = ref_mingru(x.cpu(), layer.proj.weight.cpu(), layer.proj.bias.cpu())
    assert (layer(x, backend=backend)[0].double().cpu() - want).abs().max() <= 1e-4


COMPILE_SCRIPT = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction
    from fla.ops.hgrn import chunk as ch, fused_recurrent as fr

    def jit(kernel):  # unwrap triton.autotune / triton.heuristics
        while not isinstance(kernel, JITFunction):
            kernel = kernel.fn
        return kernel

    kernels = [ch.chunk_hgrn_fwd_kernel_h, ch.chunk_hgrn_fwd_kernel_o, ch.chunk_hgrn_bwd_kernel_h,
               ch.chunk_hgrn_bwd_kernel_o, fr.fused_recurrent_hgrn_fwd_kernel, fr.fused_recurrent_hgrn_bwd_kernel]
    values = {"D": 1536, "BT": 128, "BD": 64, "USE_INITIAL_STATE": True, "STORE_FINAL_STATE": False,
              "USE_FINAL_STATE_GRADIENT": False, "IS_VARLEN": False}  # the benchmark's D; one autotune config
    for kernel in map(jit, kernels):
        for dtype in ("bf16", "fp32"):
            sig, constexprs = {}, {}
            for i, p in enumerate(kernel.params):
                if p.is_constexpr:
                    sig[p.name], constexprs[(i,)] = "constexpr", values[p.name]
                else:
                    sig[p.name] = "i32" if p.name in ("T", "s_b", "s_t", "s_d") else f"*{dtype}"
            compiled = triton.compile(ASTSource(kernel, sig, constexprs), target=GPUTarget("cuda", 90, 32))
            assert len(compiled.asm["cubin"]) > 0, (kernel.__name__, dtype)
    print("COMPILED-OK")
    """
)


def _ptxas_available() -> bool:
    try:
        import triton
    except ImportError:
        return False
    return (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").is_file()


@needs_fla
@pytest.mark.skipif(not _ptxas_available(), reason="this triton build ships no NVIDIA back-end (ptxas)")
def test_fla_kernels_compile_for_sm90(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "COMPILED-OK" in out.stdout, out.stderr[-3000:]


def test_missing_fla_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf, "has_fla", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    pytest.importorskip("triton")
    with pytest.raises(ValueError, match=r"minrnn-rl\[fla\]"):
        resolve_backend("fla", torch.device("cpu"))
    with pytest.raises(ValueError, match=r"'fla_fused' needs flash-linear-attention"):
        scan(torch.rand(1, 2, 3), torch.rand(1, 2, 3), backend="fla_fused")


def test_fla_needs_cuda_or_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    pytest.importorskip("fla.ops.hgrn")  # without the extra, the missing-package message comes first (tested above)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        resolve_backend("fla", torch.device("cpu"))


def test_cuda_auto_reads_the_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice is read once per process and path (cached), so each case uses its own file."""
    assert cuda_auto_backend(tmp_path / "missing.json") == "triton"  # no measurement: today's choice
    path = tmp_path / "bench_scan_backends.json"
    path.write_text(json.dumps({"fastest": "triton_chunked"}))
    assert cuda_auto_backend(path) == "triton_chunked"
    path2 = tmp_path / "b.json"
    path2.write_text(json.dumps({"fastest": "fla"}))
    monkeypatch.setattr(sf, "has_fla", lambda: False)
    assert cuda_auto_backend(path2) == "triton"  # measured fastest but not installed here
    path3 = tmp_path / "c.json"
    path3.write_text(json.dumps({"fastest": "logspace"}))
    assert cuda_auto_backend(path3) == "triton"  # only Triton back-ends are candidates
