"""The advx plugin registry — and the plugin author's tutorial.

advx finds components (models, datasets, attacks, training augmentations, inference
defences, evaluators, threat models) through `pluggy <https://pluggy.readthedocs.io>`_ hooks. Built-ins
are registered exactly like third-party plugins.

Writing a plugin
================
A plugin is a distribution with one entry point in the ``advx`` group::

    # pyproject.toml
    [project]
    name = "advx-myattack"
    dependencies = ["advx"]
    [project.entry-points.advx]
    myattack = "advx_myattack.hooks"

and a module (``src/advx_myattack/hooks.py``) that implements one or more hooks, each returning
a list of component classes — the next section is a complete one, a component of each kind.

With it installed (``pip install -e .``), ``advx list attack`` shows ``sign-noise`` and a TOML
experiment can use ``[[attack]] name = "sign-noise"``.

One complete example per kind
=============================
A plugin module with one component of each kind, as the core calls them (the suite runs this
block verbatim through a whole experiment: ``tests/test_tutorial.py``)::

    from typing import ClassVar
    import attrs, torch
    from torch import nn
    from advx.api import (AttackBase, AugmentationBase, Batch, DataBundle, InputTransformDefense,
                          MetricTable, hookimpl)

    @attrs.frozen
    class TinyMLP:
        \"\"\"Model factory: the core calls build() once per trained model.\"\"\"
        name: ClassVar[str] = "tiny-mlp"
        width: int = 32

        def build(self, num_classes: int, in_channels: int) -> nn.Module:
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 8 * 8, self.width), nn.ReLU(),
                                 nn.Linear(self.width, num_classes))  # for 8x8 images

    @attrs.frozen
    class Stripes:
        \"\"\"Dataset: load() returns NCHW images (uint8 0-255 or float 0-1) and int labels.\"\"\"
        name: ClassVar[str] = "stripes"
        n: int = 200

        def load(self) -> DataBundle:
            g = torch.Generator().manual_seed(0)
            y = torch.randint(0, 2, (self.n,), generator=g)
            x = torch.rand(self.n, 1, 8, 8, generator=g) * 0.3
            x[y == 1, :, :, ::2] += 0.6  # class 1 has vertical stripes
            return DataBundle.split(x.clamp(0, 1), y, ("plain", "striped"), test_fraction=0.3, seed=0)

    @attrs.frozen
    class SignNoise(AttackBase):
        \"\"\"Attack: write perturb(); AttackBase turns eps into a per-sample tensor (N x 1 x 1 x 1),
        passes generator= for every random draw, and clips the result to [0, 1]. Project onto
        the eps-ball yourself if your steps can leave it (this one cannot).\"\"\"
        name: ClassVar[str] = "sign-noise"
        eps: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))

        def perturb(self, model, x, y, *, target, generator, eps):
            noise = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
            return x + eps * noise

    @attrs.frozen
    class FlipAugment(AugmentationBase):
        \"\"\"Training augmentation: any of adapt_model, setup, augment, loss, teardown (the base
        class supplies no-ops). augment() gets a Batch (x, soft labels y as N x C, index).\"\"\"
        name: ClassVar[str] = "flip-lr"

        def augment(self, batch: Batch, ctx) -> Batch:
            flip = torch.rand(len(batch.x), generator=ctx.generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1).to(batch.x.device), batch.x.flip(-1), batch.x)
            return Batch(x, batch.y, batch.index)

    @attrs.frozen
    class Blur(InputTransformDefense):
        \"\"\"Differentiable defence: adaptive attacks differentiate through transform().\"\"\"
        name: ClassVar[str] = "blur3"

        def transform(self, x, model, generator, context):
            return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    @attrs.frozen
    class Quantize(InputTransformDefense):
        \"\"\"Non-differentiable defence: differentiable = False makes adaptive attacks pass the
        gradient straight through it (BPDA) instead of failing on a broken graph.\"\"\"
        name: ClassVar[str] = "quantize"
        differentiable: ClassVar[bool] = False
        levels: int = 4

        def transform(self, x, model, generator, context):
            return torch.round(x * (self.levels - 1)) / (self.levels - 1)

    @attrs.frozen
    class RandomShift(InputTransformDefense):
        \"\"\"Randomized defence: randomized = True averages `repeats` draws at evaluation and EOT
        draws under attack; draw every random number from `generator`, per image.\"\"\"
        name: ClassVar[str] = "random-shift"
        randomized: ClassVar[bool] = True

        def transform(self, x, model, generator, context):
            shifts = torch.randint(-1, 2, (len(x),), generator=generator)
            return torch.stack([xi.roll(int(s), dims=-1) for xi, s in zip(x, shifts)])

    @attrs.frozen
    class CleanGap:
        \"\"\"Evaluator: evaluate(results) -> list[MetricTable], over the stored per-sample results.\"\"\"
        name: ClassVar[str] = "clean-gap"

        def evaluate(self, results) -> list[MetricTable]:
            rows = []
            for train in results.labels("train"):
                clean = results.get(train, "none", "clean")
                for attack in results.attack_labels():
                    cell = results.get(train, "none", attack)
                    if clean is not None and cell is not None:
                        rows.append([train, attack, round(clean.accuracy - cell.accuracy, 2)])
            return [MetricTable("accuracy lost to each attack (points)", ["train", "attack", "gap"], rows)]

    @hookimpl
    def advx_register_models():
        return [TinyMLP]

    @hookimpl
    def advx_register_datasets():
        return [Stripes]

    @hookimpl
    def advx_register_attacks():
        return [SignNoise]

    @hookimpl
    def advx_register_training_augmentations():
        return [FlipAugment]

    @hookimpl
    def advx_register_inference_defenses():
        return [Blur, Quantize, RandomShift]

    @hookimpl
    def advx_register_evaluators():
        return [CleanGap]

Test a component with :mod:`advx.testing` (``check_attack``, ``check_defense``,
``check_augmentation`` with ``make_context``/``make_batch``).

Hooks (each returns a list of classes; every plugin's list is read)
===================================================================
``advx_register_models``
    model factories: attrs class with ``build(num_classes, in_channels) -> nn.Module``.
``advx_register_datasets``
    datasets: attrs class with ``load() -> advx.data.DataBundle``.
``advx_register_attacks``
    attacks: ``__call__(model, x, y, *, target=None, generator=None, eps=None) -> x_adv`` (subclass ``AttackBase``).
``advx_register_training_augmentations``
    training augmentations: any of ``adapt_model``, ``setup``, ``augment``, ``loss``, ``teardown``
    (an image augmentation, ``advx.api.ImageAugmentation``: ``augment_images``).
``advx_register_inference_defenses``
    inference defences: ``wrap(model, context) -> nn.Module`` (subclass ``InputTransformDefense``
    for an input transform; a whole-model defence writes ``wrap`` itself).
``advx_register_evaluators``
    evaluators: ``evaluate(results) -> list[MetricTable]``.
``advx_register_threat_models``
    threat models (named in ``evaluate.modes``): subclass ``advx.evaluation.threat_models.ThreatModel``,
    write ``adversarials(runner, cell, s, e, clean_ok)`` (the cell's points and the passes they cost)
    and declare ``crafts_on`` and ``stronger_than``; advx's own are oblivious, adaptive, transfer and
    black-box (``advx describe threat-model adaptive``).
``advx_register_sources``
    ``{kind: {prefix: class}}`` for names written ``prefix:target`` (the built-ins give
    ``torchvision:``, ``timm:``, ``robustbench:``, ``python:`` models this way); the class gets the
    text after the colon as its ``target`` parameter.
``advx_register_commands``
    optional: add click commands to the ``advx`` CLI.

Rules the registry enforces
===========================
* every component is an attrs class with ``name: ClassVar[str]`` (lower-case, ``-`` separated);
* a name is unique within its kind: when two plugins offer one name, the one that registered
  first (built-ins, then the first-party distributions, then the rest) keeps it, and the later
  one's clashing component alone is dropped with one warning naming both distributions; the rest
  of that plugin loads;
* a class must have its kind's methods (:mod:`advx.protocols`), or that class alone is dropped;
* ``ADVX_DISABLE_PLUGIN_AUTOLOAD=1`` loads built-ins only; ``ADVX_PLUGINS=a,b`` loads the
  first-party plugins and the entry points ``a`` and ``b``; ``ADVX_PLUGINS=only:a,b`` loads
  ``a`` and ``b`` alone.
"""

from advx.values import coerce, field_table, instantiate, parse_number

from .hookspecs import KIND_HOOKS, hookimpl, hookspec
from .manager import AdvxPluginManager, make_plugin_manager
from .resolve import Registry, normalize_kind

__all__ = [
    "KIND_HOOKS", "AdvxPluginManager", "Registry", "coerce", "field_table", "hookimpl", "hookspec",
    "instantiate", "make_plugin_manager", "normalize_kind", "parse_number",
]
