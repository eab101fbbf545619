"""`advx list`, `describe` and `plugins` answer from a catalog without importing any plugin (or
torch), and the catalog follows every change to what is installed."""

import os
import subprocess
import sys

import pytest

import advx
from advx.registry import catalog

PROBE = ("import sys, runpy; sys.argv = ['advx', *sys.argv[1:]]\n"
         "from advx.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")


def advx_cli(*args, env):
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env)


def test_list_and_describe_answer_without_importing_plugins(tmp_path):
    env = {**os.environ, "ADVX_CACHE_DIR": str(tmp_path)}
    first = advx_cli("list", "attack", env=env)  # builds the catalog: imports the plugins once
    assert first.returncode == 0 and "pgd " in first.stdout and "torch imported: True" in first.stderr
    assert len(list(tmp_path.glob("catalog-*.json"))) == 1
    for args in (["list", "attack"], ["describe", "attack", "pgd"], ["plugins"]):
        again = advx_cli(*args, env=env)
        assert again.returncode == 0 and "torch imported: False" in again.stderr, (args, again.stderr)
    bad = advx_cli("describe", "attack", "pgdd", env=env)
    assert "did you mean 'pgd'?" in bad.stderr and "torch imported: False" in bad.stderr


def test_the_catalog_describes_as_the_registry_does():
    reg = advx.get_registry()
    data = catalog.build(reg)
    for kind, name in [("attack", "apgd"), ("model", "digits-cnn"), ("inference_defense", "counteract"),
                       ("dataset", "npz"), ("evaluator", "worst-case")]:
        assert catalog.describe(data, kind, name) == reg.describe(kind, name)


def test_a_changed_plugin_file_or_environment_is_a_new_catalog(tmp_path, monkeypatch):
    before = catalog.catalog_key()
    import advx_attacks

    src = next(iter(sorted(__import__("pathlib").Path(advx_attacks.__file__).parent.glob("*.py"))))
    stat = src.stat()
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as an edit would
    try:
        assert catalog.catalog_key() != before
    finally:
        os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert catalog.catalog_key() == before
    monkeypatch.setenv("ADVX_PLUGINS", "attacks")
    assert catalog.catalog_key() != before


def test_every_first_party_plugin_is_known_and_plugins_all_lists_what_is_missing(monkeypatch):
    """`advx plugins --all`: the known plugins (core/known_plugins.toml) that are not installed, with
    how to install each; every plugin folder of this repository is listed there by its distribution."""
    import tomllib
    from pathlib import Path

    from click.testing import CliRunner

    import advx.registry.catalog as catalog
    from advx.cli import cli

    root = Path(__file__).resolve().parents[1]
    known = {k["distribution"]: k for k in catalog.known_plugins()}
    for pyproject in root.glob("plugins/*/pyproject.toml"):
        dist = tomllib.loads(pyproject.read_text())["project"]["name"]
        assert dist in known, f"{dist} is missing from core/known_plugins.toml"
        assert known[dist]["install"] == f"pip install -e {pyproject.parent.relative_to(root)}"
    res = CliRunner().invoke(cli, ["plugins", "--all"])
    assert res.exit_code == 0 and "known, not installed: 0" in res.output, res.output
    elsewhere = {"distribution": "advx-elsewhere", "summary": "an attack published by someone else",
                 "source": "https://example.org/advx-elsewhere", "install": "pip install advx-elsewhere"}
    monkeypatch.setattr(catalog, "known_plugins", lambda: [*known.values(), elsewhere])
    res = CliRunner().invoke(cli, ["plugins", "--all"])
    assert "known, not installed: 1" in res.output and "advx-elsewhere  an attack published by someone else" in res.output
    assert "install: pip install advx-elsewhere" in res.output
    import json

    listed = json.loads(CliRunner().invoke(cli, ["plugins", "--all", "--json"]).output)
    assert listed["known"] == [elsewhere] and {r["distribution"] for r in listed["installed"]} >= set(known)


def test_a_malformed_known_plugins_entry_is_refused_naming_it(tmp_path):
    from advx.errors import ConfigError
    from advx.registry.catalog import known_plugins

    path = tmp_path / "known.toml"
    path.write_text('[[plugin]]\ndistribution = "advx-x"\nsummary = ""\n')
    with pytest.raises(ConfigError, match=r"plugin\[0\] needs exactly distribution, summary, source, install"):
        known_plugins(path)
