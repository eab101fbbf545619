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
    return Registry(pm)


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

    with pytest.raises(PluginError, match=r"duplicate attack name 'good': GoodAttack from .* and .*Other from"):
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
    monkeypatch.setenv("ADVX_PLUGINS", "attacks")
    r = Registry()
    assert "pgd" in r.names("attack") and r.names("model") == []


def test_plugins_report_distribution_and_version():
    rows = {r["plugin"]: r for r in advx.get_registry().plugins()}
    assert rows["attacks"]["distribution"] == "advx-attacks"
    assert "pgd" in rows["attacks"]["provides"]["attack"]


def test_describe_shows_fields_defaults_and_paper():
    text = advx.describe("attack", "apgd")
    assert "eps: float = 0.0313" in text and "Croce & Hein" in text


def test_meta_every_hookspec_is_documented_and_tested():
    """datasette-style: each hookspec appears in the plugin tutorial and in some test."""
    import pathlib

    import advx.registry as reg

    tests = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py"))
    tests += "".join(p.read_text() for p in pathlib.Path(__file__).parents[1].glob("plugins/*/tests/test_*.py"))
    for hook in [*KIND_HOOKS.values(), "advx_register_commands"]:
        assert hook in (reg.__doc__ or ""), f"{hook} missing from the advx.registry tutorial"
        assert f"{hook}" in tests, f"{hook} has no test"


def _fake(kind):
    """A minimal conforming component for each kind."""
    methods = {"model": "build", "dataset": "load", "attack": "__call__", "training_augmentation": "augment",
               "inference_defense": "wrap", "evaluator": "evaluate"}
    cls = attrs.frozen(type(f"Fake_{kind}", (), {"__annotations__": {"name": "ClassVar[str]"},
                                                  "name": f"fake-{kind.replace('_', '-')}",
                                                  methods[kind]: lambda self, *a, **k: None}))
    return cls


HOOK_CASES = [("model", "advx_register_models"), ("dataset", "advx_register_datasets"),
              ("attack", "advx_register_attacks"),
              ("training_augmentation", "advx_register_training_augmentations"),
              ("inference_defense", "advx_register_inference_defenses"),
              ("evaluator", "advx_register_evaluators")]


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
