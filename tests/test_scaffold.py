"""`advx plugin new`: the package it writes is complete and its component passes advx's contract
checks before the author changes a line."""

import importlib
import importlib.util
import sys
import tempfile
import tomllib

import pytest
from click.testing import CliRunner

from advx.cli import cli


@pytest.mark.parametrize("kind", ["attack", "defense", "augmentation", "model", "dataset"])
def test_each_kind_scaffolds_a_component_that_passes_its_contract_check(tmp_path, kind, monkeypatch):
    name = f"my-{kind}"
    res = CliRunner().invoke(cli, ["plugin", "new", name, f"--{kind}", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    root = tmp_path / f"advx-{name}"
    module = f"advx_my_{kind}"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == f"advx-{name}"
    assert meta["project"]["entry-points"]["advx"] == {module: f"{module}.hooks"}
    assert meta["project"]["optional-dependencies"]["test"] == ["pytest>=7"]
    assert 'pip install -e ".[test]"' in res.output

    # the generated contract test, run in-process (its imports resolve from src/); the entry-point
    # test needs the package installed: test_the_scaffold_installs_in_a_fresh_venv_and_its_tests_pass
    monkeypatch.syspath_prepend(str(root / "src"))
    hooks = importlib.import_module(f"{module}.hooks")
    assert hooks.ADVX_API == ">=1.0,<2"
    hook = next(getattr(hooks, h) for h in dir(hooks) if h.startswith("advx_register_"))
    (cls,) = hook()
    assert cls.name == name
    from advx import testing
    from advx.api import as_float

    fixtures = {"advx_digits": lambda: testing.digits_model(epochs=1)}
    spec = importlib.util.spec_from_file_location(f"scaffold_test_{kind}", root / "tests" / f"test_{kind}.py")
    test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test)
    contract = getattr(test, f"test_{kind}_honours_the_contract")
    args = {}
    for arg in contract.__code__.co_varnames[:contract.__code__.co_argcount]:
        model, data = fixtures["advx_digits"]()
        args[arg] = (model, data) if arg == "advx_digits" else (as_float(data.x_test[:16]), data.y_test[:16])
    contract(**args)
    for m in [m for m in sys.modules if m.startswith(module)]:
        del sys.modules[m]


def test_bad_names_and_existing_folders_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["plugin", "new", "My Attack", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "use lower-case letters" in res.output
    assert CliRunner().invoke(cli, ["plugin", "new", "x", "--dir", str(tmp_path)]).exit_code == 0
    res = CliRunner().invoke(cli, ["plugin", "new", "x", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "already exists" in res.output


def test_the_scaffold_installs_in_a_fresh_venv_and_its_tests_pass(tmp_path):
    """`advx plugin new kit --attack --defense --augmentation`, `advx plugin add` a model, then the
    README's own install and test lines, verbatim, in a fresh virtual environment: the tests load
    the plugin through its entry point (check_plugin) and run the contract checks. The venv sees
    this machine's packages (--system-site-packages: torch and advx as requirements.txt installed
    them; no wheel is downloaded to rebuild them) and installs the plugin and its test extra."""
    import json
    import os
    import re
    import subprocess

    res = CliRunner().invoke(cli, ["plugin", "new", "kit", "--attack", "--defense", "--augmentation",
                                   "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    pkg = tmp_path / "advx-kit"
    assert CliRunner().invoke(cli, ["plugin", "add", str(pkg), "--model"]).exit_code == 0
    readme = (pkg / "README.md").read_text()
    install, test = re.findall(r"^    (pip install .*?|python -m pytest .*?)\s+#", readme, re.M)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "ADVX_PROGRESS": "0", "ADVX_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": ""}
    env.pop("PYTEST_ADDOPTS", None)
    for line in (install, test):
        done = subprocess.run(line, shell=True, cwd=pkg, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stdout[-3000:], done.stderr[-3000:])
    assert re.search(r"\b8 passed\b", done.stdout), done.stdout[-2000:]  # 4 kinds x (entry point, contract)

    # the installed plugin, found at a new process's start through its entry point: listed, named
    # with its version, and its attack, defence and recipe run in an experiment (one process)
    (tmp_path / "x.toml").write_text(KIT_RUN)
    script = ("import json, sys\nfrom click.testing import CliRunner\nfrom advx.cli import cli\n"
              "out = [[r.exit_code, r.output] for r in (CliRunner().invoke(cli, a) for a in json.loads(sys.argv[1]))]\n"
              "print(json.dumps(out))")
    commands = [["list", "attack"], ["plugins"], ["run", str(tmp_path / "x.toml"), "--out", str(tmp_path / "r.h5")]]
    done = subprocess.run(["python", "-c", script, json.dumps(commands)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (rc_list, listed), (rc_plugins, plugins), (rc_run, ran) = json.loads(done.stdout.splitlines()[-1])
    assert rc_list == 0 and "kit" in listed and "Random-sign noise" in listed
    assert rc_plugins == 0 and "advx-kit 0.0.1" in plugins, plugins
    assert rc_run == 0, ran
    assert "kit-trained" in ran and "accuracy (%)" in ran


KIT_RUN = """
[data]
name = "digits"
test_limit = 30
[model]
name = "digits-cnn"
[model.train]
epochs = 1
[[train]]
label = "kit-trained"
augment = [{ name = "kit" }]
epochs = 1
[[defense]]
label = "kit-defended"
chain = [{ name = "kit" }]
[[attack]]
name = "kit"
eps = 0.05
[evaluate]
modes = ["oblivious"]
"""


def test_plugin_add_refuses_a_kind_already_there_and_a_foreign_folder(tmp_path):
    assert CliRunner().invoke(cli, ["plugin", "new", "kit", "--attack", "--dir", str(tmp_path)]).exit_code == 0
    res = CliRunner().invoke(cli, ["plugin", "add", str(tmp_path / "advx-kit"), "--attack"])
    assert res.exit_code == 2 and "already has advx_register_attacks" in res.output
    res = CliRunner().invoke(cli, ["plugin", "add", str(tmp_path), "--model"])
    assert res.exit_code == 2 and "pyproject.toml" in res.output
    res = CliRunner().invoke(cli, ["plugin", "add", str(tmp_path / "advx-kit")])
    assert res.exit_code == 2 and "needs at least one kind" in res.output


def test_the_stored_fresh_venv_run_made_from_requirements_txt_passed():
    """#44's done-when exactly, run by benchmarks/fresh_venv_scaffold.sh (too slow for the suite: torch installs
    into the venv) and stored: a venv without this machine's packages, made from requirements.txt,
    in which the scaffold README's install line brought pytest from the plugin's test extra and its
    test line passed. The lines it ran are the ones the scaffold writes today."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    stored = json.loads((root / "benchmarks" / "results" / "fresh_venv_scaffold.json").read_text())
    assert stored["venv_sees_system_site_packages"] is False and stored["torch"] == "torch==2.14.1"
    assert stored["pytest_from_the_test_extra"] and stored["failed"] == 0 and stored["passed"] >= 6
    assert "+dirty" not in stored["commit"]
    with tempfile.TemporaryDirectory() as tmp:
        assert CliRunner().invoke(cli, ["plugin", "new", "kit", "--attack", "--defense", "--augmentation",
                                        "--dir", tmp]).exit_code == 0
        readme = (Path(tmp) / "advx-kit" / "README.md").read_text()
    install, test = re.findall(r"^    (pip install .*?|python -m pytest .*?)\s+#", readme, re.M)
    assert (install, test) == (stored["install_line"], stored["test_line"])
