"""Helpers for testing advx components — ours and third-party plugins'.

``check_attack`` / ``check_defense`` / ``check_augmentation`` / ``check_model`` / ``check_dataset``
assert the protocol contracts; ``check_plugin`` loads an installed plugin through its entry point;
``digits_model()`` trains (once per process) a small CNN on scikit-learn's digits;
``LinearModel`` is an analytic classifier whose minimal adversarial distances are known.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from .protocols import Batch


class LinearModel(nn.Module):
    """f(x) = W·flatten(x) + b. For true class y the minimal perturbation reaching class k has
    L2 norm (f_y − f_k)/‖w_y − w_k‖₂ and linf norm (f_y − f_k)/‖w_y − w_k‖₁ (when the box does
    not bind)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def minimal_distance(self, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
        """Exact minimal distance to the decision boundary, per sample (box ignored)."""
        with torch.no_grad():
            f = self(x)
            w = self.linear.weight
            out = []
            for i in range(len(y)):
                d = []
                for k in range(w.shape[0]):
                    if k == int(y[i]):
                        continue
                    dw = w[int(y[i])] - w[k]
                    dual = dw.abs().sum() if norm == "linf" else dw.norm()
                    d.append((f[i, y[i]] - f[i, k]) / dual)
                out.append(torch.stack(d).min())
            return torch.stack(out)


@functools.lru_cache(maxsize=4)
def digits_model(epochs: int = 15, seed: int = 0, name: str = "digits-cnn") -> tuple[nn.Module, Any]:
    """A CNN trained on digits (≈ 97 % test accuracy, a few seconds on CPU) and its data bundle.

    The same network whatever ran before in the process (its initial weights are drawn from
    ``seed`` too, leaving the global generator as it was). Cached per process; callers must not
    modify the returned model.
    """
    from advx.config import TrainSettings
    from advx.data.sources import Digits
    from advx.registry import Registry
    from advx.training import train

    reg = Registry()
    if name not in reg.names("model"):
        from advx.errors import UnknownComponentError

        raise UnknownComponentError(f"advx.testing.digits_model: no model {name!r} is installed; the default "
                                    f"digits-cnn comes with the first-party zoo plugin (pip install -e plugins/zoo)")
    data = Digits().load()
    with torch.random.fork_rng():  # the initial weights too come from ``seed``, not from what ran before
        torch.manual_seed(seed)
        model = reg.create("model", name).build(num_classes=10, in_channels=1)
    train(model, data, TrainSettings(epochs=epochs, batch_size=64, lr=2e-3), [], seed=seed,
          device=torch.device("cpu"), registry=reg)
    return model.eval(), data


def make_context(model: nn.Module, data: Any, *, seed: int = 0, epochs: int = 1, registry: Any = None) -> Any:
    """A TrainContext over ``data``'s training set, as the trainer builds it (for unit tests)."""
    from advx.config import TrainSettings
    from advx.losses import one_hot, soft_cross_entropy
    from advx.registry import Registry
    from advx.training import TrainContext

    return TrainContext(model=model, x_train=data.x_train, y_train=one_hot(data.y_train, data.num_classes),
                        num_classes=data.num_classes, device=torch.device("cpu"),
                        settings=TrainSettings(epochs=epochs), seed=seed,
                        registry=registry if registry is not None else Registry(),
                        generator=torch.Generator().manual_seed(seed), criterion=soft_cross_entropy,
                        feature_layers=tuple(getattr(model, "feature_layers", ())))


def make_batch(data: Any, n: int = 32) -> Batch:
    from advx.data.bundle import as_float
    from advx.losses import one_hot

    return Batch(as_float(data.x_train[:n]), one_hot(data.y_train[:n], data.num_classes), torch.arange(n))


class ContractError(AssertionError):
    """A component broke the contract the core relies on; the message says which rule and how."""


def _require(ok: Any, message: str) -> None:
    if not bool(ok):
        raise ContractError(message)


def check_attack(attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Assert the Attack contract, as the evaluator calls an attack: the plain call, a targeted one
    (when ``supports_target``) and a per-sample ``eps``; return the adversarial batch. Each broken
    rule raises :class:`ContractError` naming the attack and the rule."""
    name = getattr(attack, "name", type(attack).__name__)
    x_before = x.clone()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    _require(isinstance(x_adv, torch.Tensor), f"attack {name!r} returned {type(x_adv).__name__}, not a tensor")
    _require(torch.equal(x, x_before), f"attack {name!r} mutated its input (work on a copy)")
    _require(model.training, f"attack {name!r} did not restore the model's train mode")
    _require([p.requires_grad for p in model.parameters()] == flags, f"attack {name!r} changed requires_grad")
    _require(all((g is None and p.grad is None) or (g is not None and p.grad is not None and torch.equal(g, p.grad))
                 for g, p in zip(grads, model.parameters())), f"attack {name!r} changed the parameters' gradients")
    model.eval()
    within_budget(attack, name, x, x_adv, getattr(attack, "eps", None), "the plain call")
    again = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    _require(torch.allclose(again, x_adv, atol=1e-5), f"attack {name!r} is not reproducible with a seeded generator")
    eps = getattr(attack, "eps", None)
    if isinstance(eps, (int, float)) and not getattr(attack, "minimal", False):
        per_sample_eps = torch.linspace(0, float(eps), len(x))  # the evaluator may pass one budget per sample
        out = attack(model, x, y, generator=torch.Generator().manual_seed(0), eps=per_sample_eps)
        within_budget(attack, name, x, out, per_sample_eps, "a per-sample eps (linspace(0, eps))")
    if getattr(attack, "supports_target", True):
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        target = (y + 1) % classes
        out = attack(model, x, y, target=target, generator=torch.Generator().manual_seed(0))
        within_budget(attack, name, x, out, eps, "target= (supports_target is True; set it False if untargeted)")
    return x_adv


def within_budget(attack: Any, name: str, x: torch.Tensor, x_adv: torch.Tensor, eps: Any, call: str) -> None:
    """The output checks the evaluator makes on every batch: shape, dtype, finite, in the pixel
    bounds and inside the eps-ball of the attack's ``norm``."""
    _require(x_adv.shape == x.shape, f"attack {name!r} ({call}) returned shape {tuple(x_adv.shape)} for input "
                                     f"{tuple(x.shape)}")
    _require(x_adv.dtype == x.dtype, f"attack {name!r} ({call}) returned {x_adv.dtype} for {x.dtype} input")
    _require(torch.isfinite(x_adv).all(), f"attack {name!r} ({call}) produced NaN or inf")
    lo, hi = getattr(attack, "bounds", (0.0, 1.0))
    _require(x_adv.min() >= lo - 1e-6 and x_adv.max() <= hi + 1e-6, f"attack {name!r} ({call}) left the pixel "
                                                                       f"bounds [{lo}, {hi}]")
    if eps is None or getattr(attack, "minimal", False):
        return
    delta = (x_adv - x).flatten(1)
    norm = getattr(attack, "norm", "linf")
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1) if norm == "l2" else delta.abs().sum(1)
    limit = torch.as_tensor(eps, dtype=size.dtype).expand_as(size)
    _require((size <= limit + 1e-5).all(), f"attack {name!r} ({call}) left its {norm} ball: "
                                           f"{float((size - limit).max()):.5f} over (declare norm = ... if it is "
                                           "another distance)")


def check_model(factory: Any, num_classes: int = 10, in_channels: int = 1, size: int = 8) -> nn.Module:
    """Assert the Model contract: ``build(num_classes, in_channels)`` gives a module whose logits
    are N x num_classes and differentiable in the input."""
    name = getattr(factory, "name", type(factory).__name__)
    net = factory.build(num_classes=num_classes, in_channels=in_channels)
    _require(isinstance(net, nn.Module), f"model {name!r}: build() returned {type(net).__name__}, not an nn.Module")
    x = torch.rand(4, in_channels, size, size, requires_grad=True)
    out = net.eval()(x)
    _require(out.shape == (4, num_classes), f"model {name!r}: logits of shape {tuple(out.shape)}, want (4, {num_classes})")
    (grad,) = torch.autograd.grad(out.sum(), x)
    _require(torch.isfinite(grad).all() and grad.abs().sum() > 0, f"model {name!r}: no input gradient")
    return net


def check_dataset(dataset: Any) -> Any:
    """Assert the Dataset contract: ``load()`` gives a DataBundle of NCHW images and integer labels
    in range, a test split, and class names for every class."""
    name = getattr(dataset, "name", type(dataset).__name__)
    data = dataset.load()
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        _require(x.ndim == 4 and len(x) == len(y) and len(y) > 0, f"dataset {name!r}: {split} images must be "
                                                                   f"N x C x H x W with one label each")
        _require(not y.is_floating_point() and int(y.min()) >= 0 and int(y.max()) < data.num_classes,
                 f"dataset {name!r}: {split} labels must be integers in [0, {data.num_classes})")
    return data


def check_plugin(distribution: str, kind: str, name: str) -> type:
    """Load the installed ``distribution`` through its ``advx`` entry point, as every advx command
    does, and return the class it registers as ``kind`` ``name``. Fails, with the registry's own
    message, when the plugin does not import, its API range excludes this advx, a hook returns
    the wrong thing, a component breaks the protocol or its name is taken by another
    distribution: what a plugin's own unit tests cannot see."""
    import importlib.metadata as md

    from advx.registry import Registry, make_plugin_manager

    eps = [ep.name for ep in md.entry_points(group="advx") if ep.dist is not None
           and ep.dist.metadata["Name"].lower().replace("_", "-") == distribution.lower().replace("_", "-")]
    _require(eps, f"{distribution} has no installed 'advx' entry point: pip install -e . (from the package folder)")
    registry = Registry(make_plugin_manager())
    for ep in eps:
        why = registry.problems.get(ep)
        _require(why is None, f"{distribution} ({ep}): {why}")
    qualified = f"{distribution}:{name}"
    _require(qualified in registry.qualified_names(kind), f"{distribution} registers no {kind} named {name!r}")
    cls = registry.get(kind, qualified)
    _require(registry.get(kind, name) is cls, f"{distribution}'s {kind} {name!r} is not the one the name selects")
    return cls


def check_defense(defense: Any, model: nn.Module, x: torch.Tensor, num_classes: int,
                  context: dict[str, Any] | None = None) -> None:
    """Assert the InferenceDefense contract: logits of the right shape, finite, input unchanged,
    and an input gradient an adaptive attack can follow (attack draws, BPDA through steps declared
    ``differentiable = False``): not broken by the graph, not all zero."""
    from advx.defense import build_defended, is_input_transform
    from advx.evaluation.threat_models import input_gradient

    before = x.clone()
    if is_input_transform(defense):  # InputTransformDefense, or a class with only ``transform``
        wrapped = build_defended(model, [defense], context=context)
    else:
        wrapped = defense.wrap(model, context) if context is not None else defense.wrap(model)
    out = wrapped(x)
    assert out.shape == (x.shape[0], num_classes), f"defence returned shape {tuple(out.shape)}"
    assert torch.isfinite(out).all()
    assert torch.equal(x, before), "defence mutated its input"
    grad, why = input_gradient(wrapped, x)
    name = getattr(defense, "name", type(defense).__name__)
    assert grad is not None, (f"defence {name!r} breaks the input gradient of an adaptive attack ({why}): "
                              "declare differentiable = False (BPDA) or keep the graph")
    assert torch.isfinite(grad).all(), f"defence {name!r}: the input gradient is NaN or infinite"
    assert (grad.flatten(1).abs().amax(1) > 0).all(), (
        f"defence {name!r}: an all-zero input gradient on some sample (gradient masking); declare its "
        "non-differentiable steps (differentiable = False) so adaptive attacks use BPDA")


def check_augmentation(aug: Any, ctx: Any, batch: Batch) -> Batch:
    """Run setup/augment/loss/teardown once (each optional, as the trainer calls them); assert soft
    labels stay distributions."""
    from advx.training import call_hook

    call_hook(aug, "setup", ctx)
    try:
        out = call_hook(aug, "augment", batch, ctx, default=batch)
        assert out.x.shape[1:] == batch.x.shape[1:]
        assert out.y.shape[1] == batch.y.shape[1]
        assert torch.allclose(out.y.sum(1), torch.ones(len(out.y)), atol=1e-4), "labels do not sum to 1"
        assert (out.y >= -1e-6).all()
        loss = call_hook(aug, "loss", ctx.model, out, ctx)
        if loss is not None:
            assert loss.ndim == 0 and torch.isfinite(loss)
    finally:
        call_hook(aug, "teardown", ctx)
    return out
