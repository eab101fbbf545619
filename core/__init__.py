"""advx — adversarial-robustness research in PyTorch, composable and reproducible.

Python API (everything the CLI does)::

    import advx
    advx.components("attack")                       # ['apgd', 'bim', 'cw', ...]
    pgd = advx.create("attack", "pgd", eps=0.3, steps=40)
    x_adv = pgd(model, x, y)
    exp = advx.load_experiment("examples/quickstart.toml", overrides=["model.train.epochs=2"])
    results = exp.run("runs/quickstart.h5")
    advx.print_report(results)
    advx.evaluate(my_net, (x_test, y_test), attack="autoattack", eps="8/255")  # any nn.Module

Nothing is loaded at import time: each call builds its registry from the installed plugins.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_registry():
    """A fresh :class:`advx.registry.Registry` over built-ins and installed plugins."""
    from advx.registry import Registry

    return Registry()


def create(kind: str, name: str, **params: Any) -> Any:
    """A validated component, e.g. ``create("attack", "pgd", eps="8/255", steps=10)``."""
    return get_registry().create(kind, name, params)


def components(kind: str) -> list[str]:
    """Registered names of one kind: model, dataset, attack, training_augmentation,
    inference_defense, evaluator."""
    return get_registry().names(kind)


def describe(kind: str, name: str) -> str:
    return get_registry().describe(kind, name)


def load_experiment(source: Any, overrides: list[str] | None = None):
    """An :class:`Experiment` from a TOML path or a dict (``overrides`` as for ``--set``)."""
    from advx.evaluation.experiment import Experiment

    return Experiment.load(source, overrides)


def open_run(path: Any):
    """Read a run file back as :class:`advx.evaluation.RunResults`."""
    from advx.evaluation.results import RunResults
    from advx.evaluation.store import RunStore

    with RunStore(path, mode="r") as store:
        return RunResults.from_store(store)


def evaluate(model: Any, data: Any, **options: Any):
    """Clean and robust accuracy of any ``nn.Module`` (or a named network) on ``data`` under
    AutoAttack at 8/255 linf by default, as a resumable run; see :func:`advx.standard_eval.evaluate`
    for the options (attack, eps, norm, n, normalize, out, device)."""
    from advx.standard_eval import evaluate as _evaluate

    return _evaluate(model, data, **options)


def print_report(results: Any) -> None:
    from advx.evaluation.report import print_report as _print

    _print(results)


def __getattr__(name: str) -> Any:
    if name == "Experiment":
        from advx.evaluation.experiment import Experiment

        return Experiment
    raise AttributeError(f"module 'advx' has no attribute {name!r}")


__all__ = ["Experiment", "components", "create", "describe", "evaluate", "load_experiment", "open_run",
           "print_report", "get_registry"]
