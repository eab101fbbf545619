"""Paper 003's examples (fixers on ResNet-9 and Custom-2) run shrunk, as every other example in
tests/test_examples.py; a file of their own so the suite's two workers can share the examples."""

import pytest

from .test_examples import FIXER, run_shrunk


@pytest.mark.parametrize("path", FIXER, ids=[p.stem for p in FIXER])
def test_fixer_example_runs_shrunk(path, tmp_path):
    run_shrunk(path, tmp_path)
