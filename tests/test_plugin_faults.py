"""Plugin faults are named at the plugin's own line and stay local (issue #44): a hook that returns
the wrong thing, a second hook in one module, an incompatible API range; qualified names pick a
component whose plain name another distribution owns."""

import types
from typing import ClassVar

import attrs
import pytest

import advx
import advx.api
from advx.contract import API_VERSION, api_supported
from advx.errors import UnknownComponentError
from advx.registry import Registry, hookimpl, make_plugin_manager
from advx.registry.manager import api_refusal


@attrs.frozen
class Kept(advx.api.AttackBase):
    name: ClassVar[str] = "kept"

    def perturb(self, model, x, y, *, target, generator, eps):
        return x


@attrs.frozen
class KeptDefense(advx.api.InputTransformDefense):
    name: ClassVar[str] = "kept-defense"

    def transform(self, x, model, generator, context):
        return x


def module_with(**hooks):
    mod = types.ModuleType("faulty_plugin")
    for hook, fn in hooks.items():
        fn.__name__ = hook
        setattr(mod, hook, hookimpl(fn))
    return mod


def registry(mod):
    pm = make_plugin_manager(autoload=False)
    pm.register(mod, name="faulty")
    with pytest.warns(advx.errors.AdvxWarning) as caught:
        r = Registry(pm)
    return r, [str(w.message) for w in caught]


def test_a_hook_returning_a_class_names_its_file_and_line_and_the_other_hooks_still_load():
    def advx_register_attacks():
        return Kept  # not a list

    def advx_register_inference_defenses():
        return [KeptDefense]

    r, warned = registry(module_with(advx_register_attacks=advx_register_attacks,
                                     advx_register_inference_defenses=advx_register_inference_defenses))
    line = advx_register_attacks.__code__.co_firstlineno
    assert any(f"{__file__}:{line}) returned Kept; return a list of component classes, e.g. [Kept]" in w
               for w in warned), warned
    assert "kept-defense" in r.names("inference_defense")  # the plugin's valid hook still registers
    assert "digits" in r.names("dataset")  # and the rest of the world is untouched


@pytest.mark.parametrize("returned,needle", [({"kept": Kept}, "returned a dict"), (Kept(), "returned a Kept")])
def test_a_hook_returning_a_dict_or_an_instance_names_its_line(returned, needle):
    def advx_register_attacks():
        return returned

    _, warned = registry(module_with(advx_register_attacks=advx_register_attacks))
    assert any(needle in w and f"{__file__}:{advx_register_attacks.__code__.co_firstlineno}" in w for w in warned)


def test_an_instance_in_the_list_is_named_at_its_class_and_the_valid_ones_are_kept():
    def advx_register_attacks():
        return [Kept(), Kept]

    r, warned = registry(module_with(advx_register_attacks=advx_register_attacks))
    assert "kept" in r.names("attack")
    assert any("an instance of Kept" in w and "return the class, not an instance" in w and __file__ in w
               for w in warned), warned


def test_a_second_implementation_of_one_hook_is_reported_not_silently_dropped():
    mod = types.ModuleType("twice")

    def first():
        return [Kept]

    def second():
        return []

    mod.first = hookimpl(specname="advx_register_attacks")(first)
    mod.second = hookimpl(specname="advx_register_attacks")(second)
    r, warned = registry(mod)
    assert any("a second advx_register_attacks hook" in w and __file__ in w for w in warned), warned
    assert "faulty" in r.problems


def test_api_version_ranges_and_a_one_line_refusal():
    assert api_supported(">=1.0,<2") and not api_supported(">=2") and api_supported(f"=={API_VERSION}")
    assert advx.api.API_VERSION == API_VERSION
    old = types.ModuleType("oldplug")
    old.ADVX_API = ">=0.1,<1"
    refusal = api_refusal(old)
    assert refusal.startswith("it supports advx plugin API >=0.1,<1; this advx offers 1.0") and "\n" not in refusal
    bad = types.ModuleType("badplug")
    bad.ADVX_API = "one"
    assert "is not a version range" in api_refusal(bad)
    ok = types.ModuleType("okplug")
    ok.ADVX_API = ">=1.0,<2"
    assert api_refusal(ok) is None


def test_first_party_plugins_declare_a_range_this_advx_supports():
    import importlib.metadata as md
    import importlib

    for ep in md.entry_points(group="advx"):
        if ep.dist is not None and ep.dist.metadata["Name"].startswith("advx-") and ep.dist.metadata["Name"] in \
                advx.registry.manager.FIRST_PARTY:
            module = importlib.import_module(ep.value)
            assert api_refusal(module) is None and hasattr(module, "ADVX_API"), ep.value


def test_an_unknown_name_points_at_the_plugins_that_failed():
    from advx.registry.resolve import skipped_plugins, unknown_component

    rows = [{"distribution": "advx-gone", "provides": {}, "problem": "failed to import advx_gone: boom (x.py:3)"},
            {"distribution": "advx-ok", "provides": {"attack": ["a"]}}]
    err = unknown_component("attack", "gone-attack", ["pgd"], skipped=skipped_plugins(rows))
    assert isinstance(err, UnknownComponentError)
    assert "plugins that did not load (it may be theirs): advx-gone (failed to import advx_gone: boom (x.py:3))" \
        in str(err)
