"""The registry: discovery, validation of names, protocols and duplicates, env switches."""

import types
from typing import ClassVar

import attrs
import pytest

import advx
from advx.errors import ComponentParameterError, PluginError, UnknownComponentError
from advx.registry import Registry, hookimpl, make_plugin_manager
from advx.registry.hookspecs import KIND_HOOKS


def registry_with(*modules):
    pm = make_plugin_manager(autoload=False)
    for m in modules:
        pm.register(m)
    return Registry(pm, strict=True)


def plugin(kind_hook, *classes):
    mod = types.ModuleType(f"fake_{id(classes)}")

    def impl():
        return list(classes)

    impl.__name__ = kind_hook
    setattr(mod, kind_hook, hookimpl(impl))
    return mod


@attrs.frozen
class GoodAttack:
    name: ClassVar[str] = "good"

    def __call__(self, model, x, y, *, target=None):
        return x


def test_builtins_are_registered_like_plugins():
    r = registry_with()
    assert "digits" in r.names("dataset") and "accuracy" in r.names("evaluator")


def test_unknown_name_suggests_and_lists_what_is_installed():
    with pytest.raises(UnknownComponentError) as e:
        advx.get_registry().get("attack", "pgdd", where="attack[1].name")
    msg = str(e.value)
    assert "unknown attack 'pgdd' at attack[1].name; did you mean 'pgd'?" in msg
    assert "installed: " in msg and "apgd" in msg and "fgsm" in msg


def test_duplicate_names_fail_naming_both():
    @attrs.frozen
    class Other(GoodAttack):
        pass

    with pytest.raises(PluginError, match=r"duplicate attack name 'good': .*Other from .* is dropped; GoodAttack "
                                          r"from .* keeps it"):
        registry_with(plugin("advx_register_attacks", GoodAttack), plugin("advx_register_attacks", Other))


def test_protocol_violations_are_rejected():
    @attrs.frozen
    class NoBuild:
        name: ClassVar[str] = "nobuild"

    with pytest.raises(PluginError, match="lacks build"):
        registry_with(plugin("advx_register_models", NoBuild))

    @attrs.frozen
    class NoCall:  # inherits only type's __call__, which is not an attack
        name: ClassVar[str] = "nocall"

    with pytest.raises(PluginError, match="lacks __call__"):
        registry_with(plugin("advx_register_attacks", NoCall))

    class NotAttrs:
        name = "plain"

        def __call__(self, *a):
            return None

    with pytest.raises(PluginError, match="must be attrs classes"):
        registry_with(plugin("advx_register_attacks", NotAttrs))

    @attrs.frozen
    class BadName(GoodAttack):
        name: ClassVar[str] = "Bad Name"

    with pytest.raises(PluginError, match="invalid name 'Bad Name'"):
        registry_with(plugin("advx_register_attacks", BadName))


def test_parameters_are_coerced_and_validated():
    r = advx.get_registry()
    assert r.create("attack", "pgd", {"eps": "8/255", "steps": 10.0}).steps == 10
    with pytest.raises(ComponentParameterError, match=r"has no parameter 'step'; did you mean 'steps'\?"):
        r.create("attack", "pgd", {"step": 3})
    with pytest.raises(ComponentParameterError, match=r"pgd.*\.steps: expected an integer, got 'many'"):
        r.create("attack", "pgd", {"steps": "many"}, where="pgd")
    with pytest.raises(ComponentParameterError, match="norm: expected one of 'linf', 'l2'"):
        r.create("attack", "pgd", {"norm": "l3"})


def test_autoload_switches(monkeypatch):
    monkeypatch.setenv("ADVX_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert Registry().names("attack") == []
    monkeypatch.delenv("ADVX_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("ADVX_PLUGINS", "only:attacks")
    r = Registry()
    assert "pgd" in r.names("attack") and r.names("model") == ["torchscript"]  # only the built-in models
    monkeypatch.setenv("ADVX_PLUGINS", "no-such-plugin")  # the first-party plugins stay unless only: is asked
    r = Registry()
    assert "pgd" in r.names("attack") and "digits-cnn" in r.names("model")


def test_plugins_report_distribution_and_version():
    rows = {r["plugin"]: r for r in advx.get_registry().plugins()}
    assert rows["attacks"]["distribution"] == "advx-attacks"
    assert "pgd" in rows["attacks"]["provides"]["attack"]


def test_describe_shows_fields_defaults_and_paper():
    text = advx.describe("attack", "apgd")
    assert "eps: float = 0.0313" in text and "Croce & Hein" in text


def test_meta_every_hookspec_is_documented_and_tested():
    """datasette-style: each hookspec appears in the plugin tutorial, and each is registered through
    by a test case below (HOOK_CASES, one per component kind, and the commands hook's own test). A
    new hookspec without a case fails here: the check reads the cases, not the hook's name in text
    (this file names every hook, so a text search would always pass)."""
    import advx.registry as reg

    for hook in [*KIND_HOOKS.values(), "advx_register_commands"]:
        assert hook in (reg.__doc__ or ""), f"{hook} missing from the advx.registry tutorial"
    assert dict(HOOK_CASES) == KIND_HOOKS, "every component kind's hook needs a case in HOOK_CASES"
    assert callable(globals().get("test_advx_register_commands_adds_cli_verbs"))


def _fake(kind):
    """A minimal conforming component for each kind."""
    methods = {"model": "build", "dataset": "load", "attack": "__call__", "training_augmentation": "augment",
               "inference_defense": "wrap", "evaluator": "evaluate", "threat_model": "adversarials"}
    cls = attrs.frozen(type(f"Fake_{kind}", (), {"__annotations__": {"name": "ClassVar[str]"},
                                                  "name": f"fake-{kind.replace('_', '-')}",
                                                  methods[kind]: lambda self, *a, **k: None}))
    return cls


HOOK_CASES = [("model", "advx_register_models"), ("dataset", "advx_register_datasets"),
              ("attack", "advx_register_attacks"),
              ("training_augmentation", "advx_register_training_augmentations"),
              ("inference_defense", "advx_register_inference_defenses"),
              ("evaluator", "advx_register_evaluators"), ("threat_model", "advx_register_threat_models")]


@pytest.mark.parametrize("kind,hook", HOOK_CASES)
def test_each_kind_hook_registers_components(kind, hook):
    assert KIND_HOOKS[kind] == hook
    r = registry_with(plugin(hook, _fake(kind)))
    assert f"fake-{kind.replace('_', '-')}" in r.names(kind)


def test_advx_register_commands_adds_cli_verbs():
    import click
    from click.testing import CliRunner

    from advx.cli import cli

    mod = types.ModuleType("cmdplugin")

    @click.command(name="hello-advx")
    def hello():
        click.echo("hi from a plugin")

    def advx_register_commands(cli):
        cli.add_command(hello)

    mod.advx_register_commands = hookimpl(advx_register_commands)
    pm = make_plugin_manager(autoload=False)
    pm.register(mod)
    pm.hook.advx_register_commands(cli=cli)
    try:
        assert CliRunner().invoke(cli, ["hello-advx"]).output.strip() == "hi from a plugin"
    finally:
        cli.commands.pop("hello-advx", None)


def _fake_distribution(root, name, module_source):
    """A distribution on sys.path with an `advx` entry point (no pip needed): dist-info + module."""
    (root / f"{name}.py").write_text(module_source)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[advx]\n{name} = {name}\n")


def test_a_broken_or_colliding_plugin_stays_local(tmp_path):
    """One plugin that fails to import and one that takes a first-party name: every command still
    works, `advx plugins` names both in one line each, and the first-party `pgd` is untouched."""
    import os
    import subprocess
    import sys

    _fake_distribution(tmp_path, "brokenplug", "import no_such_module_anywhere\n")
    _fake_distribution(tmp_path, "clashplug", (
        "from typing import ClassVar\nimport attrs\nfrom advx.registry import hookimpl\n"
        "from advx.protocols import AttackBase\n\n@attrs.frozen\nclass Fake(AttackBase):\n"
        "    name: ClassVar[str] = 'pgd'\n    def perturb(self, model, x, y, *, target, generator, eps):\n"
        "        return x\n\n@hookimpl\ndef advx_register_attacks():\n    return [Fake]\n"))
    # a catalog cache of its own: another worker's catalog build must not evict this one mid-test
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "ADVX_CACHE_DIR": str(tmp_path / "cache")}

    def advx_cli(*args):
        return subprocess.run([sys.executable, "-m", "advx", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    assert advx_cli("--version").returncode == 0
    plugins = advx_cli("plugins")  # the first command to build the catalog: each problem warned once
    assert plugins.returncode == 0, plugins.stderr
    assert [line.count("brokenplug") > 0 for line in plugins.stderr.splitlines()].count(True) == 1, plugins.stderr
    lines = plugins.stdout.splitlines()
    broken = [line for line in lines if line.startswith("brokenplug")]
    clash = [line for line in lines if line.startswith("clashplug")]
    assert len(broken) == 1 and "skipped: failed to import brokenplug: ModuleNotFoundError" in broken[0]
    assert len(clash) == 1 and "skipped: duplicate attack name 'pgd'" in clash[0]
    listed = advx_cli("list", "attack")
    assert listed.returncode == 0 and "pgd" in listed.stdout and "apgd" in listed.stdout
    warned = [line for line in listed.stderr.splitlines() if line.startswith("warning: plugin")]
    assert len(warned) == 2 and all(len(w) < 400 for w in warned), listed.stderr
    described = advx_cli("describe", "attack", "pgd")
    assert described.returncode == 0 and "advx_attacks" in described.stdout


def test_testing_helpers_name_the_plugin_they_need(monkeypatch):
    from advx.errors import UnknownComponentError
    from advx.testing import digits_model

    monkeypatch.setenv("ADVX_DISABLE_PLUGIN_AUTOLOAD", "1")  # core alone: no zoo
    with pytest.raises(UnknownComponentError, match="digits-cnn comes with the first-party zoo plugin"):
        digits_model.__wrapped__(epochs=1)  # past the per-process cache another test may have filled


def test_an_advx_named_plugin_that_clashes_with_pgd_loses_only_that_component(tmp_path):
    """A third-party `advx-clash` that registers `pgd` beside an innocent `mine`: every first-party
    attack stays, `mine` loads, and one warning names both distributions. First party is the
    repository's list of distributions, not the `advx-` prefix."""
    import os
    import subprocess
    import sys

    _fake_distribution(tmp_path, "advx_clash", (
        "from typing import ClassVar\nimport attrs\nfrom advx.registry import hookimpl\n"
        "from advx.protocols import AttackBase\n\n@attrs.frozen\nclass Fake(AttackBase):\n"
        "    name: ClassVar[str] = 'pgd'\n    def perturb(self, model, x, y, *, target, generator, eps):\n"
        "        return x\n\n@attrs.frozen\nclass Mine(AttackBase):\n    name: ClassVar[str] = 'mine'\n"
        "    def perturb(self, model, x, y, *, target, generator, eps):\n        return x\n\n"
        "@hookimpl\ndef advx_register_attacks():\n    return [Fake, Mine]\n"))
    meta = tmp_path / "advx_clash-0.1.dist-info" / "METADATA"
    meta.write_text("Metadata-Version: 2.1\nName: advx-clash\nVersion: 0.1\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = ("from advx.registry import Registry\nr = Registry()\nprint(sorted(r.names('attack')))\n"
            "print(r.origin('attack', 'pgd'), '|', r.origin('attack', 'mine'))\n"
            "print(type(r.create('attack', 'pgd', {'steps': 3})).__module__)\n"
            "import advx\nprint(type(advx.create('attack', 'advx-clash:pgd')).__module__, "
            "type(advx.create('attack', 'advx_clash:pgd')).__module__, type(r.create('attack', 'advx-attacks:pgd')).__module__)\n"
            "print(r.describe('attack', 'advx-clash:pgd').splitlines()[0])")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    names, origins, module, qualified, described = res.stdout.splitlines()
    assert qualified == "advx_clash advx_clash advx_attacks.gradient"  # the dropped one, by its distribution
    assert described.startswith("attack 'advx-clash:pgd'  (advx_clash.Fake, from advx-clash 0.1)")
    assert {"pgd", "apgd", "apgd-t", "autoattack", "cw", "deepfool", "fab", "fgsm", "square", "mine"} <= set(eval(names))
    assert origins.startswith("advx-attacks ") and origins.endswith("advx-clash 0.1")
    assert module == "advx_attacks.gradient"
    warned = [line for line in res.stderr.splitlines() if "advx_clash" in line]
    assert len(warned) == 1 and "advx-clash 0.1" in warned[0] and "advx-attacks" in warned[0], res.stderr
    assert "pick either by its distribution: 'advx-attacks:pgd' or 'advx-clash:pgd'" in warned[0]
    env["ADVX_CACHE_DIR"] = str(tmp_path / "cache")  # the CLI answers from its catalog: qualified names too
    both = [subprocess.run([sys.executable, "-m", "advx", "describe", "attack", name], env=env, capture_output=True,
                           text=True, timeout=120) for name in ("advx-clash:pgd", "pgd")]
    assert all(r.returncode == 0 for r in both), [r.stderr for r in both]
    assert "(advx_clash.Fake, from advx-clash 0.1)" in both[0].stdout.splitlines()[0]
    assert "advx_attacks.gradient.PGD" in both[1].stdout.splitlines()[0]


def test_a_plugin_that_fails_to_import_is_named_with_its_file_and_line(tmp_path):
    import os
    import subprocess
    import sys

    _fake_distribution(tmp_path, "lineplug", "x = 1\nraise ValueError('bad default')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "ADVX_CACHE_DIR": str(tmp_path / "cache")}
    plain = subprocess.run([sys.executable, "-m", "advx", "plugins"], env=env, capture_output=True, text=True,
                           timeout=120)
    line = next(x for x in plain.stdout.splitlines() if x.startswith("lineplug"))
    assert f"ValueError: bad default ({tmp_path / 'lineplug.py'}:2)" in line
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-m", "advx", "--debug", "plugins"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert "Traceback (most recent call last)" in debug.stderr and 'lineplug.py", line 2' in debug.stderr


def test_a_plugin_can_register_a_source_prefix():
    """advx_register_sources: ``mysrc:anything`` builds the plugin's class with target="anything"
    (how the built-ins offer torchvision:, python: and the other model sources)."""
    @attrs.frozen
    class FromSource(GoodAttack):
        name: ClassVar[str] = "from-source"
        target: str = ""

    mod = types.ModuleType("fake_sources")

    def advx_register_sources():
        return {"attack": {"mysrc": FromSource}}

    mod.advx_register_sources = hookimpl(advx_register_sources)
    reg = registry_with(mod)
    assert reg.create("attack", "mysrc:anything").target == "anything"
    assert "torchvision" in reg._sources["model"]  # the built-ins' own sources, through the same hook
    with pytest.raises(UnknownComponentError, match="or from a source: mysrc:..."):
        reg.get("attack", "nosuch")
