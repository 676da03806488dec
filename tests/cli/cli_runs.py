"""What the CLI tests share: ``run_rl.main`` called in-process, with what it printed."""

from __future__ import annotations

import pytest

import run_rl


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``run_rl.main(argv)``."""
    code = run_rl.main(argv)
    out, err = capsys.readouterr()
    return code, out, err
