"""``advx plugin new NAME --attack --defense ...``: a working plugin package to start from —
pyproject with the ``advx`` entry point and a ``test`` extra, one module per component kind (its
flags and docstring slots filled in), a hooks module registering them under the plugin API range
it was written for, tests that load the plugin through its entry point and run ``advx.testing``'s
contract checks, and a README saying how to install and test it. ``advx plugin add FOLDER
--model`` adds a kind to a package made this way. The generated code passes its own tests before
the author changes a line.
"""

from __future__ import annotations

import re
from pathlib import Path

from advx.errors import AdvxError

KINDS = ("attack", "defense", "augmentation", "model", "dataset")
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

_PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"
description = "advx plugin: {what}"
dependencies = ["advx>={advx_version}"]

[project.optional-dependencies]
test = ["pytest>=7"]

[project.entry-points.advx]
{entry} = "{module}.hooks"

[tool.setuptools.packages.find]
where = ["src"]
'''

_ATTACK = '''"""{dist}: the attack ``{name}``. Replace the body of ``perturb`` with your method,
and cite the paper and section it follows here."""

from typing import ClassVar

import attrs

from advx.api import AttackBase, streams


@attrs.frozen
class {cls}(AttackBase):
    """Random-sign noise of size eps (a baseline to replace). Distance: linf.

    Arguments: eps (8/255). Cost: no forward pass."""

    name: ClassVar[str] = "{name}"
    #: draws through advx.streams, so a sample gets the same numbers in any batch
    per_sample_streams: ClassVar[bool] = True
    #: the threat model the evaluator checks every output against
    norm: ClassVar[str] = "linf"
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))

    def perturb(self, model, x, y, *, target, generator, eps):
        # eps is the per-sample budget (N x 1 x 1 x 1); AttackBase sets eval mode, freezes the
        # weights, copies the inputs and clamps the result to the pixel bounds
        sign = (streams.uniform(generator, x.shape, x) < 0.5).to(x) * 2 - 1
        return x + eps * sign
'''

_DEFENSE = '''"""{dist}: the inference defence ``{name}``. Replace ``transform`` with your method, and
cite the paper and section it follows here."""

from typing import ClassVar

import attrs

from advx.api import InputTransformDefense, streams


@attrs.frozen
class {cls}(InputTransformDefense):
    """Adds small Gaussian noise to the input before the classifier (a baseline to replace).

    Arguments: sigma (0.02)."""

    name: ClassVar[str] = "{name}"
    #: a fresh draw per call: evaluated over ``repeats`` draws and attacked with EOT
    randomized: ClassVar[bool] = True
    #: False would make adaptive attacks pass gradients straight through it (BPDA)
    differentiable: ClassVar[bool] = True
    #: draws keyed by each input's content: the same image gets the same draws in any batch
    per_sample_streams: ClassVar[bool] = True
    sigma: float = attrs.field(default=0.02, validator=attrs.validators.ge(0))

    def transform(self, x, model, generator, context):
        return (x + self.sigma * streams.normal(generator, x.shape, x)).clamp(0, 1)
'''

_AUGMENTATION = '''"""{dist}: the training recipe ``{name}``. Every hook (adapt_model, setup,
augment, loss, teardown) is optional; replace ``augment`` with your method, and cite the paper
and section it follows here."""

from typing import ClassVar

import attrs
import torch

from advx.api import AugmentationBase, Batch


@attrs.frozen
class {cls}(AugmentationBase):
    """Flips every other training image left-right (a baseline to replace).

    Arguments: probability (0.5)."""

    name: ClassVar[str] = "{name}"
    probability: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0), attrs.validators.le(1)])

    def augment(self, batch: Batch, ctx) -> Batch:
        flip = torch.rand(len(batch.x), generator=ctx.generator) < self.probability
        x = batch.x.clone()
        x[flip] = x[flip].flip(-1)
        return Batch(x, batch.y, batch.index)
'''

_MODEL = '''"""{dist}: the model ``{name}``. Replace ``build`` with your architecture, and cite the
paper and section it follows here."""

from typing import ClassVar

import attrs
from torch import nn


@attrs.frozen
class {cls}:
    """A two-layer perceptron on any image size (a baseline to replace).

    Arguments: width (64)."""

    name: ClassVar[str] = "{name}"
    width: int = attrs.field(default=64, validator=attrs.validators.ge(1))

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        # called once per trained model; the core sizes the classifier from the data
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(self.width), nn.ReLU(), nn.Linear(self.width, num_classes))
'''

_DATASET = '''"""{dist}: the dataset ``{name}``. Replace ``load`` with your data (and a ``download``
flag if it comes from the network), and cite where it comes from here."""

from typing import ClassVar

import attrs
import torch

from advx.api import DataBundle


@attrs.frozen
class {cls}:
    """Two classes of 8 x 8 noise images, one with vertical stripes (a baseline to replace).

    Arguments: n (400 images), seed (0)."""

    name: ClassVar[str] = "{name}"
    n: int = attrs.field(default=400, validator=attrs.validators.ge(20))
    seed: int = 0

    def load(self) -> DataBundle:
        g = torch.Generator().manual_seed(self.seed)
        y = torch.randint(0, 2, (self.n,), generator=g)
        x = torch.rand(self.n, 1, 8, 8, generator=g) * 0.3
        x[y == 1, :, :, ::2] += 0.6
        return DataBundle.split(x.clamp(0, 1), y, ("plain", "striped"), test_fraction=0.25, seed=self.seed)
'''

_HOOKS = '''"""{dist}: registers the plugin's components with advx (``advx plugin add`` appends here)."""

from advx.api import hookimpl

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION); advx refuses to
#: load it, in one line, when its own version falls outside
ADVX_API = "{api_range}"
'''

_HOOK = '''

from .{kind} import {cls}  # noqa: E402


@hookimpl
def {hook}():
    return [{cls}]
'''

_CONFTEST = '''"""advx's fixtures for plugin tests: advx_digits (a small trained CNN and its data),
advx_images, advx_train_context."""

pytest_plugins = ["advx.pytest_fixtures"]
'''

_TEST = '''"""The {kind} ``{name}``: loaded through the plugin's entry point as advx loads it, then
advx.testing's contract checks."""

from advx import testing


def test_{kind}_registers_through_the_entry_point():
    testing.check_plugin("{dist}", "{registry_kind}", "{name}")


def test_{kind}_honours_the_contract({fixtures}):
    from {module}.{kind} import {cls}

{body}
'''

_TEST_BODY = {
    "attack": ("advx_digits, advx_images", "    testing.check_attack({cls}(), advx_digits[0], *advx_images)"),
    "defense": ("advx_digits, advx_images",
                "    testing.check_defense({cls}(), advx_digits[0], advx_images[0], advx_digits[1].num_classes)"),
    "augmentation": ("advx_digits", "    model, data = advx_digits\n"
                                    "    testing.check_augmentation({cls}(), testing.make_context(model, data), "
                                    "testing.make_batch(data))"),
    "model": ("", "    testing.check_model({cls}(), num_classes=10, in_channels=1)"),
    "dataset": ("", "    testing.check_dataset({cls}())"),
}

_README = '''# {dist}

An advx plugin: {what}.

    pip install -e ".[test]"    # then: advx list attack (and the others) shows them
    python -m pytest tests      # loads the plugin through its entry point, then advx's contract checks

{usage}
`advx describe KIND NAME` prints a component's parameters and flags; where another plugin uses
the same name, `{dist}:NAME` picks this one. `advx plugin add . --model` adds another kind.
This package declares the advx plugin API range it supports (`ADVX_API` in `hooks.py`); advx
refuses to load it, in one line, outside that range.
'''

#: kind -> (template, registry kind, TOML table, class suffix); the hook is the registry kind's
_KINDS = {"attack": (_ATTACK, "attack", "[[attack]]", "Attack"),
          "defense": (_DEFENSE, "inference_defense", "[[defense]]", "Defense"),
          "augmentation": (_AUGMENTATION, "training_augmentation", "[[model.train.augment]]", "Augmentation"),
          "model": (_MODEL, "model", "[model]", "Model"),
          "dataset": (_DATASET, "dataset", "[data]", "Dataset")}


def _hook_name(kind: str) -> str:
    """The registration hook of a scaffold kind (``advx_register_attacks`` ...)."""
    from advx.registry.hookspecs import KIND_HOOKS  # here: the CLI imports this module at start-up

    return KIND_HOOKS[_KINDS[kind][1]]


def _names(name: str) -> tuple[str, str, str]:
    """(distribution, module, class stem) of the plugin ``name``."""
    return f"advx-{name}", "advx_" + name.replace("-", "_"), "".join(p.capitalize() for p in re.split(r"[-_]", name))


def _kind_files(root: Path, name: str, kind: str) -> dict[Path, str]:
    """The component module and the test one kind adds to the package at ``root``."""
    dist, module, stem = _names(name)
    template, registry_kind, _, suffix = _KINDS[kind]
    fields = dict(dist=dist, module=module, cls=stem + suffix, name=name, kind=kind, registry_kind=registry_kind)
    fixtures, body = _TEST_BODY[kind]
    return {root / "src" / module / f"{kind}.py": template.format(**fields),
            root / "tests" / f"test_{kind}.py": _TEST.format(**fields, fixtures=fixtures, body=body.format(**fields))}


def _hook(name: str, kind: str) -> str:
    _, _, stem = _names(name)
    return _HOOK.format(kind=kind, cls=stem + _KINDS[kind][3], hook=_hook_name(kind))


def _readme(name: str, kinds: list[str]) -> str:
    dist, _, _ = _names(name)
    usage = ["Use it in an experiment file:", ""]
    for k in kinds:
        usage += [f"    {_KINDS[k][2]}", f'    name = "{name}"']
    usage += ["", "or from Python: " + ", ".join(f'`advx.create("{_KINDS[k][1]}", "{name}")`' for k in kinds) + "."]
    return _README.format(dist=dist, what=", ".join(f"the {k} `{name}`" for k in kinds), usage="\n".join(usage))


def _check_kinds(kinds: list[str]) -> list[str]:
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise AdvxError(f"unknown kind {', '.join(bad)}: choose from {', '.join(KINDS)}")
    return list(dict.fromkeys(kinds)) or ["attack"]


def new_plugin(name: str, kinds: list[str] | str = ("attack",), where: Path = Path(".")) -> Path:
    """Write the package ``advx-NAME`` with one component of each of ``kinds`` under ``where`` and
    return its folder."""
    if not _NAME.match(name):
        raise AdvxError(f"plugin name {name!r}: use lower-case letters and digits, words joined by '-' or '_' "
                        "(e.g. my-attack)")
    kinds = _check_kinds([kinds] if isinstance(kinds, str) else list(kinds))
    dist, module, _ = _names(name)
    root = where / dist
    if root.exists():
        raise AdvxError(f"{root} already exists; pick another name or folder (advx plugin add adds a kind to it)")
    from advx import __version__
    from advx.contract import API_VERSION

    major = int(API_VERSION.split(".")[0])
    files = {
        root / "pyproject.toml": _PYPROJECT.format(dist=dist, module=module, entry=module,
                                                   what=", ".join(kinds) + f" {name}",
                                                   advx_version=".".join(__version__.split(".")[:2])),
        root / "src" / module / "__init__.py": f'"""{dist}: an advx plugin."""\n',
        root / "src" / module / "hooks.py": _HOOKS.format(dist=dist, api_range=f">={API_VERSION},<{major + 1}")
        + "".join(_hook(name, k) for k in kinds),
        root / "tests" / "conftest.py": _CONFTEST,
        root / "README.md": _readme(name, kinds),
    }
    for k in kinds:
        files.update(_kind_files(root, name, k))
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def add_kind(root: Path, kinds: list[str]) -> list[Path]:
    """Add a component of each of ``kinds`` to the package at ``root`` (made by ``new_plugin``):
    its module, its test and its hook in ``hooks.py``. Returns the files written."""
    import tomllib

    kinds = _check_kinds(kinds)
    try:
        dist = tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise AdvxError(f"{root}: no readable pyproject.toml with [project] name ({exc})") from exc
    if not dist.startswith("advx-"):
        raise AdvxError(f"{root}: {dist!r} was not made by advx plugin new (its name does not start with advx-)")
    name = dist.removeprefix("advx-")
    _, module, _ = _names(name)
    hooks = root / "src" / module / "hooks.py"
    if not hooks.is_file():
        raise AdvxError(f"{root}: no {hooks.relative_to(root)}; was it made by advx plugin new?")
    text = hooks.read_text()
    written = []
    for k in kinds:
        if f"def {_hook_name(k)}(" in text:
            raise AdvxError(f"{hooks} already has {_hook_name(k)}: add your class to the list it returns")
        files = _kind_files(root, name, k)
        clash = [p for p in files if p.exists()]
        if clash:
            raise AdvxError(f"{clash[0]} already exists")
        for path, body in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            written.append(path)
        text += _hook(name, k)
    hooks.write_text(text)
    return [*written, hooks]
