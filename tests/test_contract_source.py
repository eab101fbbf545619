"""The plugin contract is stated once, in advx.contract (issue #44): the base classes' signatures,
and every method call written in the six texts that state it (the protocols' docstring, the base
classes' docstrings, the registry's tutorial, the hook specifications, the README's plugin
section, the scaffold's templates), must agree with its table; ``advx describe`` shows what the
evaluator checks outputs against."""

import inspect
import re
from pathlib import Path

import pytest

import advx.protocols
import advx.registry
import advx.registry.hookspecs
from advx import scaffold
from advx.api import AttackBase, AugmentationBase, InputTransformDefense
from advx.contract import ATTRIBUTES, SIGNATURES

ROOT = Path(__file__).resolve().parents[1]


def params(text: str) -> list[str]:
    """Parameter names (and ``*``) of a written argument list, annotations and defaults dropped."""
    depth, part, parts = 0, "", []
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    names = [re.split(r"[:=]", p)[0].strip() for p in parts if p.strip()]
    return [n for n in names if n not in ("self",)]


def source(kind: str, method: str) -> list[str]:
    return params(SIGNATURES[kind][method])


def test_the_base_classes_have_the_tables_signatures():
    bases = {"attack": AttackBase, "training_augmentation": AugmentationBase, "inference_defense": InputTransformDefense}
    for kind, cls in bases.items():
        for method in SIGNATURES[kind]:
            if not hasattr(cls, method):
                assert kind == "training_augmentation" and method == "augment_images", (kind, method)
                continue  # an image augmentation's hook (advx.api.ImageAugmentation), not a recipe's
            sig = inspect.signature(getattr(cls, method))
            written = [("*" if p.kind == p.KEYWORD_ONLY and i == first_kw else "") for i, p in
                       enumerate(sig.parameters.values())
                       for first_kw in [next((j for j, q in enumerate(sig.parameters.values())
                                              if q.kind == q.KEYWORD_ONLY), -1)]]
            names = []
            for mark, p in zip(written, sig.parameters.values()):
                if p.name == "self":
                    continue
                if mark:
                    names.append("*")
                names.append(p.name)
            assert names == source(kind, method), (kind, method, names)
    from advx.api import ImageAugmentation

    names = [p for p in inspect.signature(ImageAugmentation.augment_images).parameters if p != "self"]
    assert names == source("training_augmentation", "augment_images")


def texts() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    plugin_section = readme[readme.index("## Writing a plugin"):]
    plugin_section = plugin_section[:plugin_section.find("\n## ", 3)]
    return {
        "advx.protocols docstring": advx.protocols.__doc__,
        "base class docstrings": "\n".join(inspect.getdoc(c) or "" for c in (AttackBase, AugmentationBase,
                                                                            InputTransformDefense)),
        "help(advx.registry)": advx.registry.__doc__,
        "registry/hookspecs.py": inspect.getsource(advx.registry.hookspecs),
        "README plugin section": plugin_section,
        "scaffold templates": inspect.getsource(scaffold),
    }


# a method call as texts write it: not preceded by a word character or a dot (``advx.evaluate(``)
CALL = re.compile(r"(?<![\w.])(?:def )?(%s)\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
METHODS = {m: k for k, table in SIGNATURES.items() for m in table
           if m not in ("load", "build", "evaluate", "setup", "prepare", "loss")}  # common words: matched below


@pytest.mark.parametrize("where", list(texts()))
def test_every_written_call_of_a_contract_method_matches_the_table(where):
    text = texts()[where]
    pattern = re.compile(CALL.pattern % "|".join(map(re.escape, METHODS)))
    seen = 0
    for m in pattern.finditer(text):
        method, written = m.group(1), params(m.group(2))
        if written == ["..."] or not written:  # a name mentioned (``perturb()``), not a call written out
            continue
        want = source(METHODS[method], method)
        if "..." in written:  # an abbreviation: the names before it must be the table's first ones
            cut = written.index("...")
            assert written[:cut] == want[:cut], (where, m.group(0), want)
        else:
            assert written == want, f"{where}: {m.group(0)!r} — advx.contract says {method}({SIGNATURES[METHODS[method]][method]})"
        seen += 1
    if where in ("advx.protocols docstring", "help(advx.registry)", "README plugin section"):
        assert seen >= 3, f"{where} writes no contract call: the test would not notice a change"


def test_attack_call_written_as_attack_model_x_y_matches_call():
    """Texts write the attack's call as ``attack(model, x, y, ...)``; its parameters are __call__'s."""
    for where, text in texts().items():
        for m in re.finditer(r"(?<![\w.])attack\(model, ([^()]*)\)", text):
            written = ["model", *params(m.group(1))]
            if "..." not in written:
                assert written == source("attack", "__call__"), (where, m.group(0))


def test_every_attribute_the_core_reads_is_documented_in_the_protocols():
    doc = advx.protocols.__doc__
    for kind in ("attack", "inference_defense"):
        for name in ATTRIBUTES[kind]:
            if name != "name":
                assert f"``{name}``" in doc or f"``{name} " in doc, (kind, name)


def test_advx_describe_shows_the_norm_every_output_is_checked_in():
    from advx.api import AttackBase as _  # noqa: F401

    r = advx.get_registry()
    assert "norm: linf  (the ball" in r.describe("attack", "fgsm")
    assert "norm: linf (parameter norm)" in r.describe("attack", "autoattack")


def test_first_party_plugins_import_only_advx_api():
    offenders = []
    for path in (ROOT / "plugins").glob("*/src/*/*.py"):
        for line in path.read_text().splitlines():
            if re.match(r"\s*(from advx(\.(?!api\b)[\w.]+)? import|import advx\.)", line) and "advx.api" not in line:
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_readme_contract_table_is_generated_from_the_source():
    from advx.contract import markdown_table

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- contract:start -->") + len("<!-- contract:start -->"):
                   readme.index("<!-- contract:end -->")].strip()
    assert block == markdown_table().strip(), "README's contract table is stale: paste advx.contract.markdown_table()"


@pytest.mark.parametrize("where", list(texts()))
def test_every_list_of_a_recipes_hooks_names_them_all(where):
    """'any of setup, augment, ...' sentences: each names every hook the table gives a recipe."""
    hooks = [h for h in SIGNATURES["training_augmentation"] if h != "augment_images"]
    for m in re.finditer(r"any of ([^.]*?(?:setup|augment)[^.]*)", texts()[where]):
        missing = [h for h in hooks if h not in m.group(1)]
        assert not missing, f"{where}: {m.group(0)!r} lacks {missing}"
