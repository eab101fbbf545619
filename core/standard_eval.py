"""The one-command standard evaluation: "how robust is *my* model?" without writing a TOML file.

``advx eval`` and ``advx.evaluate`` build the same config dict an experiment file would hold
(``eval_config``) and run it through the same evaluator, so the run file, the resume and the
report are those of ``advx run``, and ``--save-config`` hands the user that file to grow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from advx.errors import ConfigError

#: Files that are a test set on their own: every sample is evaluated (test_fraction = 1).
ARRAY_FILES = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}


def data_table(data: str, root: str | None = None, download: bool = False) -> dict[str, Any]:
    """``[data]`` for a dataset name (``cifar10``, ``torchvision:SVHN``) or an array file."""
    suffix = Path(data).suffix.lower()
    if suffix in ARRAY_FILES:
        return {"name": ARRAY_FILES[suffix], "path": data, "test_fraction": 1.0}
    table: dict[str, Any] = {"name": data}
    if root is not None:
        table["root"] = root
    if download:
        table["download"] = True
    return table


def parse_normalize(text: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """A preset name, ``{mean, std}``, or the CLI's ``"M1,M2,M3/S1,S2,S3"``."""
    if text is None or isinstance(text, dict) or "/" not in text:
        return text
    mean, _, std = text.partition("/")
    try:
        return {"mean": [float(v) for v in mean.split(",")], "std": [float(v) for v in std.split(",")]}
    except ValueError:
        raise ConfigError(f"--normalize: expected a preset or MEAN,.../STD,..., e.g. 0.5,0.5,0.5/0.25,0.25,0.25; "
                          f"got {text!r}") from None


def norms_of(cls: Any, field: Any) -> tuple[str, ...]:
    """The norms an attack class runs in: its ``norm`` field's choices, else its declared norm."""
    if field is not None:
        choices = getattr(field.validator, "options", None)
        if choices:
            return tuple(choices)
        return (field.default,) if isinstance(field.default, str) else ()
    return (str(getattr(cls, "norm", "linf")),)


def check_norm(registry: Any, cls: Any, field: Any, norm: str) -> None:
    """Refuse ``--norm`` for an attack that has no such norm (it would run in its own norm and
    report that number as if it were the one asked for), naming the attacks that have it."""
    if norm in norms_of(cls, field):
        return
    having = []
    for name in registry.names("attack"):
        other = registry.get("attack", name)
        if norm in norms_of(other, {f.name: f for f in attrs.fields(other)}.get("norm")):
            having.append(name)
    raise ConfigError(f"--norm {norm}: attack {cls.name!r} runs in {', '.join(norms_of(cls, field)) or 'no norm'} "
                      f"only; attacks with {norm}: {', '.join(having) or 'none installed'}")


def eval_config(model: str | None, data: str | dict[str, Any], *, attacks: tuple[str, ...] = ("autoattack",),
                eps: str | float | None = None, norm: str | None = None, n: int | None = None,
                checkpoint: str | None = None, strip_prefix: str = "", normalize: Any = None, seed: int = 0,
                batch_size: int | str | None = None, registry: Any = None, name: str = "eval",
                model_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment dict of a standard evaluation: the network as loaded (no training), the
    test set (``n`` samples), each attack at ``eps``/``norm`` where it takes them."""
    if registry is None:
        from advx.registry import Registry

        registry = Registry()
    if model is None and checkpoint is None:
        raise ConfigError("--model: name the network (e.g. torchvision:resnet18, python:pkg.mod:fn, digits-cnn) "
                          "or give a TorchScript --checkpoint")
    model_t: dict[str, Any] = {"name": model, **(model_params or {})} if model is not None else {}
    if checkpoint is not None:
        model_t["checkpoint"] = checkpoint
    elif model.startswith("python:"):  # the user's factory returns the network it means: evaluate it as built
        model_t["pretrained"] = True
    else:
        from advx.model_sources import arrives_trained

        if not arrives_trained(model, model_params or {}):
            raise ConfigError(f"--checkpoint: {model} has no trained weights of its own; give its --checkpoint "
                              f"(advx eval evaluates a network as loaded; to train one, write an experiment TOML)")
    if strip_prefix:
        model_t["strip_prefix"] = strip_prefix
    if normalize is not None:
        model_t["normalize"] = parse_normalize(normalize)
    data_t = data_table(data) if isinstance(data, str) else dict(data)
    if n is not None:
        data_t["test_limit"] = n
    if not attacks:
        raise ConfigError("--attack: name at least one attack (autoattack is the standard)")
    if isinstance(eps, str):  # "0.1" is written as a number, "8/255" as the fraction researchers read
        try:
            eps = float(eps)
        except ValueError:
            pass
    attack_ts = []
    for a in attacks:
        table: dict[str, Any] = dict(a) if isinstance(a, dict) else {"name": a}  # {"name": ..., params}
        cls = registry.get("attack", table["name"], where="--attack")
        fields = {f.name: f for f in attrs.fields(cls)}
        if eps is not None and "eps" in fields:
            table.setdefault("eps", eps)
        elif eps is not None and getattr(cls, "minimal", False):
            table.setdefault("budget", eps)  # a minimal-norm attack's success counts within the budget
        if norm is not None:
            check_norm(registry, cls, fields.get("norm"), norm)
            if "norm" in fields:
                table.setdefault("norm", norm)
        attack_ts.append(table)
    raw: dict[str, Any] = {"experiment": {"name": name, "seed": seed, "output": f"runs/{name}.h5"},
                           "data": data_t, "model": model_t, "attack": attack_ts}
    if batch_size is not None:
        raw["evaluate"] = {"batch_size": batch_size}
    return raw


def evaluate(model: Any, data: Any, *, attack: str | tuple[str, ...] = "autoattack", eps: str | float | None = "8/255",
             norm: str | None = "linf", n: int | None = None, normalize: Any = None, checkpoint: str | None = None,
             out: str | Path | None = None, device: str | None = None, overwrite: bool = False, seed: int = 0,
             batch_size: int | str | None = None) -> Any:
    """Clean and robust accuracy of ``model`` on ``data`` under the standard attack(s); returns
    the :class:`advx.evaluation.results.RunResults` of a run file that resumes like any run.

    ``attack``: a name, a table ``{"name": "autoattack", "steps": 20}`` or a list of either.

    ``model``: any ``nn.Module`` (evaluated as given, on a copy), or a name as in ``[model]``
    (``"torchvision:resnet18"``, ``"python:pkg.mod:fn"``, a registered network with
    ``checkpoint``). ``data``: a dataset name, an ``.npz``/``.h5`` file, a ``DataBundle`` or a
    pair ``(x, y)`` of test tensors (x in [0, 1], NCHW). ``normalize``: the model's input
    normalisation (``"imagenet"`` or ``{"mean": [...], "std": [...]}``), applied inside the
    model so eps is in pixels.
    """
    import numpy as np
    import torch
    from torch import nn

    from advx.data.bundle import DataBundle
    from advx.data.external import remember as remember_data
    from advx.evaluation.experiment import Experiment
    from advx.model_sources import remember as remember_model

    network = model if isinstance(model, nn.Module) else None
    if network is not None:
        model = remember_model(model.eval())
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(_array_like(t) for t in data):
        x, y = (t if isinstance(t, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(t)) for t in data)
        if not x.is_floating_point() and x.dtype != torch.uint8:
            raise ConfigError(f"data: images must be float in [0, 1] or uint8, got {x.dtype}")
        if y.is_floating_point() or y.ndim != 1:
            raise ConfigError(f"data: labels must be one integer class index per image (shape (N,)), got "
                              f"{y.dtype} of shape {tuple(y.shape)}")
        y = y.long()
        width = _output_width(network, x) if network is not None else None
        if width is not None and int(y.max()) >= width:
            raise ConfigError(f"data: label {int(y.max())} is outside the network's {width} outputs")
        # the class count is the network's (a small test set may miss some classes), else the labels'
        classes = tuple(str(i) for i in range(width or int(y.max()) + 1))
        data = DataBundle(x[:0], y[:0], x, y, classes)
    if isinstance(data, DataBundle):
        data = {"name": remember_data(data)}
    attacks = (attack,) if isinstance(attack, (str, dict)) else tuple(attack)
    raw = eval_config(model, data, attacks=attacks, eps=eps, norm=norm, n=n, checkpoint=checkpoint,
                      normalize=normalize, seed=seed, batch_size=batch_size)
    experiment = Experiment.load(raw)
    target = Path(out) if out is not None else experiment.default_output()
    results = experiment.run(out, device=device, overwrite=overwrite)
    import sys

    print(f"advx.evaluate: results in {target} (advx report {target}; advx.open_run to read it back)", file=sys.stderr)
    return results


def _array_like(t: Any) -> bool:
    """A torch tensor or a NumPy array (images and labels may come as either)."""
    import numpy as np
    import torch

    return isinstance(t, (torch.Tensor, np.ndarray))


def _output_width(model: Any, x: Any) -> int | None:
    """How many classes ``model`` scores (its output width on one input), or None if it cannot say."""
    import torch

    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    sample = x[:1].float()
    if sample.max() > 1:  # uint8 pixels: the evaluator scales them the same way
        sample = sample / 255
    try:
        with torch.no_grad():
            out = model.eval()(sample.to(device))
    except Exception:  # noqa: BLE001 - a network that cannot run here is reported by the evaluator itself
        return None
    return int(out.shape[-1]) if out.ndim == 2 else None
