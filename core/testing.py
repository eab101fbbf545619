"""Helpers for testing advx components — ours and third-party plugins'.

``check_attack`` / ``check_defense`` / ``check_augmentation`` assert the protocol contracts;
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


def check_attack(attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Assert the Attack contract and return the adversarial batch."""
    x_before = x.clone()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x_before), "attack mutated its input"
    assert model.training, "attack did not restore train mode"
    assert [p.requires_grad for p in model.parameters()] == flags, "attack changed requires_grad"
    assert all((g is None and p.grad is None) or (g is not None and p.grad is not None and torch.equal(g, p.grad))
               for g, p in zip(grads, model.parameters())), "attack changed parameter gradients"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all(), "attack produced NaN/inf"
    lo, hi = attack.bounds
    assert x_adv.min() >= lo - 1e-6 and x_adv.max() <= hi + 1e-6, "attack left the pixel bounds"
    eps = getattr(attack, "eps", None)
    if eps is not None and not getattr(attack, "minimal", False):
        delta = (x_adv - x).flatten(1)
        norm = delta.abs().amax(1) if getattr(attack, "norm", "linf") == "linf" else delta.norm(dim=1)
        assert (norm <= eps + 1e-5).all(), f"attack left its eps-ball: {norm.max():.5f} > {eps}"
    again = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(again, x_adv, atol=1e-5), "attack is not reproducible with a seeded generator"
    model.eval()
    return x_adv


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
