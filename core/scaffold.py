"""``advx plugin new NAME``: a working plugin package to start from — pyproject with the ``advx``
entry point, a hooks module with one component of the chosen kind (its flags and docstring
slots filled in), a test that runs ``advx.testing``'s contract checks, and a README saying how
to install and use it. The generated code passes its own test before the author changes a line.
"""

from __future__ import annotations

import re
from pathlib import Path

from advx.errors import AdvxError

KINDS = ("attack", "defense", "augmentation")
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

_PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.0.1"
description = "advx plugin: {what}"
dependencies = ["advx"]

[project.entry-points.advx]
{entry} = "{module}.hooks"

[tool.setuptools.packages.find]
where = ["src"]
'''

_ATTACK = '''"""{dist}: the {kind} ``{name}``. Replace the body of ``perturb`` with your method, and cite
the paper and section it follows here."""

from typing import ClassVar

import attrs

from advx.api import AttackBase, hookimpl, streams


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


@hookimpl
def advx_register_attacks():
    return [{cls}]
'''

_DEFENSE = '''"""{dist}: the {kind} ``{name}``. Replace ``transform`` with your method, and cite the paper
and section it follows here."""

from typing import ClassVar

import attrs

from advx.api import InputTransformDefense, hookimpl, streams


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


@hookimpl
def advx_register_inference_defenses():
    return [{cls}]
'''

_AUGMENTATION = '''"""{dist}: the training recipe ``{name}``. Every hook (setup, augment, loss, teardown) is
optional; replace ``augment`` with your method, and cite the paper and section it follows here."""

from typing import ClassVar

import attrs

from advx.api import AugmentationBase, Batch, hookimpl


@attrs.define
class {cls}(AugmentationBase):
    """Flips every other training image left-right (a baseline to replace).

    Arguments: probability (0.5)."""

    name: ClassVar[str] = "{name}"
    probability: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0), attrs.validators.le(1)])

    def augment(self, batch: Batch, ctx) -> Batch:
        import torch

        flip = torch.rand(len(batch.x), generator=ctx.generator) < self.probability
        x = batch.x.clone()
        x[flip] = x[flip].flip(-1)
        return Batch(x, batch.y, batch.index)


@hookimpl
def advx_register_training_augmentations():
    return [{cls}]
'''

_TEST = '''"""The contract checks advx runs on every component (advx.testing), on this plugin's."""

from {module}.hooks import {cls}

from advx import testing
from advx.api import as_float


def test_{func}_honours_the_contract():
    model, data = testing.digits_model(epochs=1)  # a small CNN on scikit-learn's digits, cached per process
{body}
'''

_TEST_BODY = {
    "attack": "    testing.check_attack({cls}(), model, as_float(data.x_test[:16]), data.y_test[:16])",
    "defense": "    testing.check_defense({cls}(), model, as_float(data.x_test[:16]), data.num_classes)",
    "augmentation": "    testing.check_augmentation({cls}(), testing.make_context(model, data), testing.make_batch(data))",
}

_README = '''# {dist}

An advx plugin: the {kind} `{name}`.

    pip install -e .          # then: advx list {list_kind}   shows {name}
    python -m pytest tests    # advx.testing's contract checks

Use it in an experiment file:

    {table}
    name = "{name}"

or from Python: `advx.create("{list_kind}", "{name}")`. `advx describe {list_kind} {name}` prints
its parameters and flags.
'''

_TEMPLATES = {"attack": (_ATTACK, "check_attack", "attack", "[[attack]]"),
              "defense": (_DEFENSE, "check_defense", "inference_defense", "[[defense]]"),
              "augmentation": (_AUGMENTATION, "check_augmentation", "training_augmentation",
                               "[[model.train.augment]]")}


def new_plugin(name: str, kind: str = "attack", where: Path = Path(".")) -> Path:
    """Write the package ``advx-NAME`` under ``where`` and return its folder."""
    if not _NAME.match(name):
        raise AdvxError(f"plugin name {name!r}: use lower-case letters and digits, words joined by '-' or '_' "
                        "(e.g. my-attack)")
    if kind not in KINDS:
        raise AdvxError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    dist = f"advx-{name}"
    module = "advx_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    root = where / dist
    if root.exists():
        raise AdvxError(f"{root} already exists; pick another name or folder")
    body, check, list_kind, table = _TEMPLATES[kind]
    fields = dict(dist=dist, module=module, cls=cls, name=name, kind=kind, entry=module, check=check,
                  func=module, list_kind=list_kind, table=table, what=f"the {kind} {name}")
    files = {
        "pyproject.toml": _PYPROJECT.format(**fields),
        f"src/{module}/__init__.py": f'"""{dist}: an advx plugin."""\n',
        f"src/{module}/hooks.py": body.format(**fields),
        f"tests/test_{module}.py": _TEST.format(**fields, body=_TEST_BODY[kind].format(**fields)),
        "README.md": _README.format(**fields),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
