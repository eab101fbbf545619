"""`advx plugin new`: the package it writes is complete and its component passes advx's contract
checks before the author changes a line."""

import importlib
import sys
import tomllib

import pytest
from click.testing import CliRunner

from advx.cli import cli


@pytest.mark.parametrize("kind", ["attack", "defense", "augmentation"])
def test_the_scaffold_is_a_working_plugin(tmp_path, kind, monkeypatch):
    name = f"my-{kind}"
    res = CliRunner().invoke(cli, ["plugin", "new", name, "--kind", kind, "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    root = tmp_path / f"advx-{name}"
    module = f"advx_my_{kind}"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == f"advx-{name}"
    assert meta["project"]["entry-points"]["advx"] == {module: f"{module}.hooks"}
    assert f"pip install -e {root}" in res.output

    # the generated test, run as the author would run it (its imports resolve from src/)
    monkeypatch.syspath_prepend(str(root / "src"))
    monkeypatch.syspath_prepend(str(root / "tests"))
    hooks = importlib.import_module(f"{module}.hooks")
    hook = next(getattr(hooks, h) for h in dir(hooks) if h.startswith("advx_register_"))
    (cls,) = hook()
    assert cls.name == name
    test = importlib.import_module(f"test_{module}")
    getattr(test, f"test_{module}_honours_the_contract")()
    for m in [m for m in sys.modules if m.startswith(module) or m == f"test_{module}"]:
        del sys.modules[m]


def test_bad_names_and_existing_folders_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["plugin", "new", "My Attack", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "use lower-case letters" in res.output
    assert CliRunner().invoke(cli, ["plugin", "new", "x", "--dir", str(tmp_path)]).exit_code == 0
    res = CliRunner().invoke(cli, ["plugin", "new", "x", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "already exists" in res.output


def test_the_scaffold_installs_and_its_own_tests_pass(tmp_path):
    """`advx plugin new my-thing` as a user runs it: pip installs the package, advx lists its
    attack, and the package's generated tests pass as written."""
    import os
    import subprocess

    res = CliRunner().invoke(cli, ["plugin", "new", "my-thing", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    pkg, site = tmp_path / "advx-my-thing", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "ADVX_PROGRESS": "0"}
    listed = subprocess.run([sys.executable, "-m", "advx.cli", "list", "attack"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and "my-thing" in listed.stdout, listed.stderr
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                          str(pkg / "tests")], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout[-2000:] + own.stderr[-2000:]
