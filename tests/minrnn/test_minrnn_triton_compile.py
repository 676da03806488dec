"""Both Triton scans compile for a Hopper GPU (sm_90) on this CPU machine: Triton's front end, its LLVM passes and
the ptxas it ships run without a GPU. The interpreter tests check what the kernels compute; this one catches what only
the compiler rejects (a construct the interpreter accepts, a constexpr branch, a scan over a tuple)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from minrnn import scan_triton as st

    kernels = [(st._scan_fwd_kernel, 4), (st._scan_bwd_kernel, 7),
               (st._scan_fwd_chunk_kernel, 4), (st._scan_bwd_chunk_kernel, 7)]
    for kernel, n_pointers in kernels:
        names = kernel.arg_names
        for dtype in ("bf16", "fp32"):
            for has_h0 in (True, False):
                values = {"HAS_H0": has_h0, "BLOCK_D": 64, "CHUNK": st.CHUNK, "ACC": tl.float32}
                signature = {n: f"*{dtype}" if i < n_pointers else "i32" if n in ("T", "D") else "constexpr"
                             for i, n in enumerate(names)}
                constexprs = {(names.index(n),): v for n, v in values.items() if n in names}
                compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32))
                assert "cubin" in compiled.asm and len(compiled.asm["cubin"]) > 0, (kernel.__name__, dtype, has_h0)
    print("COMPILED-OK")
    """
)


def _ptxas_available() -> bool:
    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    return (bin_dir / "ptxas").is_file()


@pytest.mark.skipif(not _ptxas_available(), reason="this triton build ships no NVIDIA back-end (ptxas)")
def test_triton_kernels_compile_for_sm90(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path), PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "COMPILED-OK" in proc.stdout, proc.stderr[-3000:]
