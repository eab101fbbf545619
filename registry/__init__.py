"""The advx plugin registry — and the plugin author's tutorial.

advx finds components (models, datasets, attacks, training augmentations, inference
defences, evaluators) through `pluggy <https://pluggy.readthedocs.io>`_ hooks. Built-ins
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

and a module that implements one or more hooks::

    # src/advx_myattack/hooks.py
    from typing import ClassVar
    import attrs, torch
    from advx.registry import hookimpl
    from advx.protocols import AttackBase

    @attrs.frozen
    class SignNoise(AttackBase):
        \"\"\"Random-sign noise of size eps (a sanity baseline).\"\"\"
        name: ClassVar[str] = "sign-noise"
        eps: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))

        def perturb(self, model, x, y, *, target=None, generator=None, eps=None):
            # eps arrives per sample (N x 1 x 1 x 1); AttackBase clips to [0, 1] afterwards
            noise = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
            return x + eps * noise

    @hookimpl
    def advx_register_attacks():
        return [SignNoise]

``pip install -e .`` and ``advx list attack`` shows ``sign-noise``; a TOML experiment can use
``[[attack]] name = "sign-noise"``. ``advx.testing`` has contract checks to run in your tests.

Hooks (each returns a list of classes; all results are collected)
=================================================================
``advx_register_models``
    model factories: attrs class with ``build(num_classes, in_channels) -> nn.Module``.
``advx_register_datasets``
    datasets: attrs class with ``load() -> advx.data.DataBundle``.
``advx_register_attacks``
    attacks: ``__call__(model, x, y, *, target=None) -> x_adv`` (subclass ``AttackBase``).
``advx_register_training_augmentations``
    training augmentations: any of ``setup``, ``augment``, ``loss``, ``teardown``.
``advx_register_inference_defenses``
    inference defences: ``wrap(model) -> nn.Module`` (subclass ``InputTransformDefense``).
``advx_register_evaluators``
    evaluators: ``evaluate(results) -> list[MetricTable]``.
``advx_register_commands``
    optional: add click commands to the ``advx`` CLI.

Rules the registry enforces
===========================
* every component is an attrs class with ``name: ClassVar[str]`` (lower-case, ``-`` separated);
* a name is unique within its kind — a duplicate fails, naming both distributions;
* a class must have its kind's methods (:mod:`advx.protocols`);
* ``ADVX_DISABLE_PLUGIN_AUTOLOAD=1`` loads built-ins only; ``ADVX_PLUGINS=a,b`` loads only the
  entry points ``a`` and ``b``.
"""

from .hookspecs import KIND_HOOKS, hookimpl, hookspec
from .manager import AdvxPluginManager, make_plugin_manager
from .resolve import Registry, coerce, field_table, instantiate, normalize_kind, parse_number

__all__ = [
    "KIND_HOOKS", "AdvxPluginManager", "Registry", "coerce", "field_table", "hookimpl", "hookspec",
    "instantiate", "make_plugin_manager", "normalize_kind", "parse_number",
]
