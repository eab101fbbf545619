"""Networks from outside the plugin registry, named ``source:target`` in ``[model] name``.

- ``torchvision:<factory>`` — any torchvision classification factory (``resnet18``, ``vit_b_16``,
  ...); ``weights`` is torchvision's enum name (``IMAGENET1K_V1``, fetched with ``download =
  true`` into torch's hub cache) or a local state-dict file.
- ``timm:<model>`` — a timm model (``pip install 'advx[timm]'``); ``pretrained`` fetches its weights.
- ``python:<module>:<callable>`` — a factory from the user's own importable code, called with
  the table's ``kwargs``. This runs that code: an explicit opt-in, as importing it would.
- ``robustbench:<model>`` — a RobustBench model zoo entry (``pip install 'advx[robustbench]'``),
  read from RobustBench's cache layout ``model_dir/<dataset>/<threat_model>/<model>.pt``;
  ``download = true`` lets RobustBench fetch a missing file.

Each is a model factory like a plugin's (``build(num_classes, in_channels) -> nn.Module``);
``pretrained`` says the network arrives trained, so the experiment evaluates it as is.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar

import attrs
from torch import nn

from advx.errors import ConfigError


def _need(module: str, extra: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module} package: pip install 'advx[{extra}]'") from None


def _kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"model.kwargs: expected a table of keyword arguments, got {value!r}")
    return dict(value)


@attrs.frozen
class TorchvisionModel:
    """A torchvision classification network, ``name = "torchvision:resnet18"``. ``kwargs`` go to
    the factory; ``num_classes`` is the data set's unless ``weights`` names torchvision's own
    (ImageNet) weights, which fix it."""

    source: ClassVar[str] = "torchvision"
    name: ClassVar[str] = "torchvision:<factory>"
    target: str
    weights: str | None = None
    download: bool = False
    kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_kwargs)

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        import torchvision

        try:
            factory = torchvision.models.get_model_builder(self.target)
        except ValueError:
            hint = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))[:8])
            raise ConfigError(f"model.name: torchvision has no model {self.target!r} (e.g. {hint}, ...)") from None
        if self.weights is None or Path(self.weights).suffix:
            net = factory(weights=None, **{"num_classes": num_classes, **self.kwargs})
            if self.weights is not None:
                from advx.checkpoints import load_weights

                load_weights(net, Path(self.weights), where="model.weights")
            return net
        enum = torchvision.models.get_model_weights(self.target)
        if self.weights not in enum.__members__:
            raise ConfigError(f"model.weights: {self.target} has no weights {self.weights!r}; "
                              f"torchvision offers {', '.join(enum.__members__)} (or give a state-dict file)")
        weights = enum[self.weights]
        classes = len(weights.meta.get("categories") or [])
        if classes and classes != num_classes:
            raise ConfigError(f"model.weights: {self.target} {self.weights} classifies {classes} classes but the data "
                              f"set has {num_classes}")
        if not self.download and not _in_hub_cache(weights.url):
            raise ConfigError(f"model.weights: {self.weights} is not in torch's cache ({_hub_dir()}); set "
                              f"model.download = true to fetch it (needs network) or give a local file")
        return factory(weights=weights, **self.kwargs)


def _hub_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _in_hub_cache(url: str) -> bool:
    return (_hub_dir() / Path(url).name).is_file()


@attrs.frozen
class TimmModel:
    """A timm network, ``name = "timm:resnet18"``; ``pretrained = true`` loads timm's weights
    (from its cache, or fetched when ``download = true``)."""

    source: ClassVar[str] = "timm"
    name: ClassVar[str] = "timm:<model>"
    target: str
    pretrained: bool = False
    download: bool = False
    kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_kwargs)

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        timm = _need("timm", "timm", "model.name = \"timm:...\"")
        if not timm.is_model(self.target):
            raise ConfigError(f"model.name: timm has no model {self.target!r} (timm.list_models() lists them)")
        if self.pretrained and not self.download:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read the cache only; a miss fails instead of fetching
        try:
            return timm.create_model(self.target, pretrained=self.pretrained, num_classes=num_classes,
                                     in_chans=in_channels, **self.kwargs)
        except (OSError, RuntimeError) as exc:
            if self.pretrained and not self.download:
                raise ConfigError(f"model.pretrained: timm weights for {self.target} are not cached; set "
                                  f"model.download = true (needs network): {str(exc).splitlines()[0]}") from None
            raise


@attrs.frozen
class PythonModel:
    """``name = "python:my_pkg.nets:build_net"``: the callable ``build_net(**kwargs)`` from the
    user's importable code returns the network (``num_classes``/``in_channels`` are passed when
    its signature takes them). Importing runs that code: only name modules you trust.
    ``pretrained = true`` when the factory returns trained weights (evaluated as is)."""

    source: ClassVar[str] = "python"
    name: ClassVar[str] = "python:<module>:<callable>"
    target: str
    pretrained: bool = False
    kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_kwargs)

    def factory(self) -> Any:
        module, _, attr = self.target.partition(":")
        if not module or not attr:
            raise ConfigError(f"model.name: expected python:<module>:<callable>, e.g. python:my_pkg.nets:build_net, "
                              f"got python:{self.target}")
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # the user's module may raise anything while importing
            raise ConfigError(f"model.name: cannot import {module!r} ({type(exc).__name__}: {exc}); is it on "
                              f"PYTHONPATH or installed?") from None
        fn = getattr(mod, attr, None)
        if not callable(fn):
            raise ConfigError(f"model.name: {module} has no callable {attr!r}")
        return fn

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        fn = self.factory()
        try:
            takes = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            takes = {}
        given = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels))
                 if k in takes and k not in self.kwargs}
        try:
            bound = inspect.signature(fn).bind(**given, **self.kwargs)
        except TypeError as exc:  # wrong keyword arguments: say which, against the factory's own signature
            raise ConfigError(f"model.kwargs: python:{self.target} cannot take {sorted(self.kwargs)} ({exc}); its "
                              f"signature is {self.target.split(':')[-1]}{inspect.signature(fn)}") from None
        except ValueError:  # a builtin without a signature: call it and let it say
            bound = None
        net = fn(*bound.args, **bound.kwargs) if bound is not None else fn(**given, **self.kwargs)
        if not isinstance(net, nn.Module):
            raise ConfigError(f"model.name: python:{self.target} returned {type(net).__name__}, not a torch nn.Module")
        return net


def _import_robustbench() -> Any:
    """``robustbench.utils``. RobustBench 1.1.1 from PyPI imports ``autoattack`` while its own
    dependency installs it as ``pyautoattack``, and it needs ``pkg_resources`` (setuptools < 81):
    the first is bridged here, the second named in the error."""
    import sys

    if "autoattack" not in sys.modules and importlib.util.find_spec("autoattack") is None \
            and importlib.util.find_spec("pyautoattack") is not None:
        sys.modules["autoattack"] = importlib.import_module("pyautoattack")
    try:
        with warnings.catch_warnings():  # its import's deprecation notices (pkg_resources, torch.jit) are not the user's
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("robustbench.utils")
    except ImportError as exc:
        if getattr(exc, "name", "") == "pkg_resources":
            raise ConfigError("robustbench needs pkg_resources: pip install 'setuptools<81'") from None
        raise ConfigError(f"model.name = \"robustbench:...\" needs the robustbench package ({exc}): "
                          f"pip install 'advx[robustbench]'") from None


@attrs.frozen
class RobustBenchModel:
    """A RobustBench zoo model, ``name = "robustbench:Carmon2019Unlabeled"`` with ``dataset``
    (cifar10, cifar100, imagenet) and ``threat_model`` (Linf, L2, corruptions). The checkpoint is
    read from RobustBench's cache layout ``model_dir/<dataset>/<threat_model>/<name>.pt``; a
    missing file is fetched by RobustBench only when ``download = true``. RobustBench models take
    [0, 1] pixels and normalise inside, so no ``normalize`` is needed."""

    source: ClassVar[str] = "robustbench"
    name: ClassVar[str] = "robustbench:<model>"
    target: str
    dataset: str = "cifar10"
    threat_model: str = "Linf"
    model_dir: str = "models"
    download: bool = False

    pretrained: ClassVar[bool] = True

    def checkpoint(self) -> Path:
        return Path(self.model_dir) / self.dataset / self.threat_model / f"{self.target}.pt"

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        utils = _import_robustbench()
        path = self.checkpoint()
        if not path.is_file() and not self.download:
            raise ConfigError(f"model.name: RobustBench checkpoint {path} not found; put it there, point "
                              f"model.model_dir at its folder, or set model.download = true (needs network)")
        fetching = not path.is_file()
        try:
            return utils.load_model(model_name=self.target, model_dir=self.model_dir, dataset=self.dataset,
                                    threat_model=self.threat_model)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"model.name: RobustBench has no {self.dataset}/{self.threat_model} model "
                              f"{self.target!r} ({exc})") from None
        except (OSError, RuntimeError) as exc:  # requests' errors are OSErrors; a cut download fails to unpickle
            if path.is_file() and fetching:
                path.unlink()  # a partial download must not pass for the checkpoint next time
            reason = re.sub(r"\s*\(Caused by.*", "", str(exc).splitlines()[0])[:160] if str(exc) else type(exc).__name__
            what = "downloading" if fetching else "reading"
            raise ConfigError(f"model.name: {what} RobustBench's {self.target} failed ({reason}); check the "
                              f"network, or put the checkpoint at {path}") from None


@attrs.frozen
class TorchScriptModel:
    """A TorchScript archive (``torch.jit.save``) is the network: ``[model] checkpoint =
    "net.ts"`` with no name, or ``name = "torchscript", path = "net.ts"``."""

    name: ClassVar[str] = "torchscript"
    path: str
    pretrained: ClassVar[bool] = True

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        import torch

        from advx.checkpoints import is_torchscript

        path = Path(self.path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.checkpoint: file {path} not found")
        if not is_torchscript(path):
            raise ConfigError(f"model.checkpoint: {path} is not a TorchScript archive; a state dict needs the "
                              f"network's name (model.name)")
        return torch.jit.load(str(path), map_location="cpu")


#: Networks handed to ``advx.evaluate`` as objects, by the digest of their weights.
IN_MEMORY: dict[str, nn.Module] = {}


def module_digest(net: nn.Module) -> str:
    """sha256 of a network's class and weights: the same network keys the same run."""
    import hashlib

    h = hashlib.sha256(type(net).__qualname__.encode())
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def remember(net: nn.Module) -> str:
    """Register ``net`` for ``name = "memory:<digest>"`` and return that name."""
    digest = module_digest(net)
    IN_MEMORY[digest] = net
    return f"memory:{digest}"


@attrs.frozen
class MemoryModel:
    """A network passed to ``advx.evaluate`` as an object (``memory:<digest of its weights>``);
    evaluated as given, on a copy so the caller's module never moves device."""

    source: ClassVar[str] = "memory"
    name: ClassVar[str] = "memory:<digest>"
    target: str
    pretrained: ClassVar[bool] = True

    def build(self, num_classes: int, in_channels: int) -> nn.Module:
        import copy

        if self.target not in IN_MEMORY:
            raise ConfigError(f"model.name: memory:{self.target} names a network handed to advx.evaluate in "
                              f"another process; name it by source or checkpoint instead")
        return copy.deepcopy(IN_MEMORY[self.target])


SOURCES: dict[str, type] = {cls.source: cls for cls in (TorchvisionModel, TimmModel, PythonModel, RobustBenchModel,
                                                         MemoryModel)}
_PRETRAINED_PARAMS = ("weights", "pretrained")


def arrives_trained(name: str, params: dict[str, Any]) -> bool:
    """Whether ``[model]`` names a network that comes with its weights (evaluated as loaded)."""
    source = split_source(name)
    cls = SOURCES[source[0]] if source else TorchScriptModel if name == TorchScriptModel.name else None
    if cls is not None and getattr(cls, "pretrained", None) is True:
        return True
    return cls is not None and any(params.get(k) not in (None, False) for k in _PRETRAINED_PARAMS)


def split_source(name: str) -> tuple[str, str] | None:
    """``("torchvision", "resnet18")`` for ``"torchvision:resnet18"``; None for a registry name."""
    source, sep, target = name.partition(":")
    return (source, target) if sep and source in SOURCES else None
