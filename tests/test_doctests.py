"""Run the `>>>` examples in the docstrings of every module of minrnn, envs and agents."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

MODULES = [
    f"{pkg}.{m.name}"
    for pkg in ("minrnn", "envs", "agents")
    for m in pkgutil.iter_modules(importlib.import_module(pkg).__path__)
    if m.name != "__main__"
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
