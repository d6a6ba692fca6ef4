"""Every command-line script imports: a renamed library function fails here, not in a
user's (or a benchmark's) hands."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p.stem for p in (Path(__file__).parents[1] / "scripts").glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_imports_and_has_a_main(name):
    module = importlib.import_module(f"scripts.{name}")
    assert callable(module.main)
