"""`advx list`, `describe` and `plugins` answer from a catalog without importing any plugin (or
torch), and the catalog follows every change to what is installed."""

import os
import subprocess
import sys

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
