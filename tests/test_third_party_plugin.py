"""A plugin package written from scratch in a temp dir, pip-installed, found by advx."""

import json
import os
import subprocess
import sys
import textwrap

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"
[project]
name = "advx-signnoise"
version = "0.0.1"
dependencies = []
[project.entry-points.advx]
signnoise = "advx_signnoise.hooks"
[tool.setuptools.packages.find]
where = ["src"]
"""

HOOKS = '''
from typing import ClassVar
import attrs, torch
from advx.registry import hookimpl
from advx.protocols import AttackBase

@attrs.frozen
class SignNoise(AttackBase):
    """Random-sign noise of size eps (a sanity baseline)."""
    name: ClassVar[str] = "sign-noise"
    eps: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))

    def perturb(self, model, x, y, *, target=None, generator=None, eps=None):
        noise = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
        return x + eps * noise

@hookimpl
def advx_register_attacks():
    return [SignNoise]
'''

TOML = """
[data]
name = "digits"
test_limit = 30
[model]
name = "digits-cnn"
[model.train]
epochs = 1
[[attack]]
name = "sign-noise"
eps = 0.05
"""


def test_pip_installed_plugin_is_listed_and_runs(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "src" / "advx_signnoise").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "src" / "advx_signnoise" / "__init__.py").write_text("")
    (pkg / "src" / "advx_signnoise" / "hooks.py").write_text(textwrap.dedent(HOOKS))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "ADVX_PROGRESS": "0"}
    (tmp_path / "x.toml").write_text(TOML)
    # one new process (the plugin is found at its start, from PYTHONPATH), three commands in it
    script = ("import json, sys\nfrom click.testing import CliRunner\nfrom advx.cli import cli\n"
              "out = [[r.exit_code, r.output] for r in (CliRunner().invoke(cli, a) for a in json.loads(sys.argv[1]))]\n"
              "print(json.dumps(out))")
    commands = [["list", "attack"], ["plugins"], ["run", str(tmp_path / "x.toml"), "--out", str(tmp_path / "r.h5")]]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(commands)], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (rc_list, listed), (rc_plugins, plugins), (rc_run, ran) = json.loads(done.stdout.splitlines()[-1])
    assert rc_list == 0 and "sign-noise" in listed and "Random-sign noise" in listed
    assert rc_plugins == 0 and "advx-signnoise 0.0.1" in plugins
    assert rc_run == 0, ran
    assert "sign-noise" in ran and "accuracy (%)" in ran
