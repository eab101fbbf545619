"""Hook specifications: one ``advx_register_<kind>`` hook per component kind.

Every hook takes no arguments and returns a list of component classes (attrs classes
with a ``name: ClassVar[str]``). Every plugin's list is read; advx reads one implementation of
each hook per plugin module (a second one, pluggy's ``specname=``, is reported, not called). A
name is unique within its kind:
when two plugins offer one name, the one that registered first (built-ins, then the first-party
distributions, then the rest) keeps it, and the later one's clashing component is reachable only
as ``distribution:name``, with one warning naming both distributions.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("advx")
hookimpl = pluggy.HookimplMarker("advx")


@hookspec
def advx_register_models() -> list[type]:
    """Return model factory classes: ``build(num_classes, in_channels) -> nn.Module``.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_datasets() -> list[type]:
    """Return dataset classes: ``load() -> DataBundle`` of [0, 1] NCHW tensors.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_attacks() -> list[type]:
    """Return attack classes: ``__call__(model, x, y, *, target=None, generator=None, eps=None) -> x_adv``
    (subclass ``advx.api.AttackBase`` and write ``perturb``); the full contract, with every
    attribute the core reads (``eps``, ``norm``, ``bounds``, flags), is ``advx.protocols`` and the
    ``advx.contract.CONTRACT`` table.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_training_augmentations() -> list[type]:
    """Return training-augmentation classes: any of ``setup``/``augment``/``loss``/``teardown``/
    ``adapt_model`` (each optional), or ``augment_images`` for an image augmentation; see
    ``advx.protocols`` and ``advx.contract.CONTRACT``.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_inference_defenses() -> list[type]:
    """Return inference-defence classes: ``wrap(model, context) -> nn.Module``, or
    ``transform(x, model, generator, context) -> x'`` (the core wraps it); see ``advx.protocols``
    and ``advx.contract.CONTRACT``.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_evaluators() -> list[type]:
    """Return evaluator classes: ``evaluate(results) -> list[MetricTable]``.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_threat_models() -> list[type]:
    """Return threat-model classes: ``adversarials(runner, cell, s, e, clean_ok)`` gives a cell's
    adversarial points, ``cell_mode(...)`` which cells it makes, ``stronger_than`` the threat models
    it must never trail; see ``advx.evaluation.threat_models``. advx's own are oblivious, adaptive,
    transfer and black-box; ``evaluate.modes`` names them.

    Every plugin's list is read (no first-result-wins).
    """


@hookspec
def advx_register_commands(cli) -> None:
    """Add click commands to the ``advx`` group.

    :param cli: the root :class:`click.Group`; call ``cli.add_command(cmd)``.
    """


@hookspec
def advx_register_sources() -> dict[str, dict[str, type]]:
    """Return ``{kind: {prefix: class}}``: components named ``prefix:target`` that no plugin
    registers by name — the class is created with the text after the colon as its ``target``
    parameter. The built-ins register ``torchvision:``, ``timm:``, ``robustbench:``, ``python:``
    and ``memory:`` models and ``torchvision:`` data sets this way. The first plugin to offer a
    prefix keeps it.
    """


KIND_HOOKS = {
    "model": "advx_register_models",
    "dataset": "advx_register_datasets",
    "attack": "advx_register_attacks",
    "training_augmentation": "advx_register_training_augmentations",
    "inference_defense": "advx_register_inference_defenses",
    "evaluator": "advx_register_evaluators",
    "threat_model": "advx_register_threat_models",
}
