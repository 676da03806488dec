"""Run the `>>>` examples in the docstrings of minrnn, envs and agents: one test per module that has examples.

The one test file at the root of tests/, because it covers every package the same way.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("minrnn", "envs", "agents")


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, prefix=f"{pkg}."):
            if info.name.endswith("__main__"):
                continue
            tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
            if any(t.examples for t in tests):
                names.append(info.name)
    return names


MODULES = _modules()


def test_the_public_modules_have_examples() -> None:
    """The collection below is not empty, so the doctests cannot pass vacuously."""
    assert {"agents.config", "envs.store", "minrnn.scan"} <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
