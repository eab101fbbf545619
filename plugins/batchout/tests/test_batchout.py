"""BatchOut mechanism checks (paper 002): stop-gradient, fraction k, η range, no effect at inference."""

import pytest
import torch

import advx
from advx.config import TrainSettings
from advx.data.sources import Digits
from advx.registry import Registry
from advx.testing import make_batch, make_context
from advx.training import train
from advx_batchout.batchout import batchout, feature_noise


@pytest.fixture(scope="module")
def data():
    return Digits().load()


def test_stop_gradient_makes_the_perturbation_branch_constant():
    h = torch.randn(8, 4, 3, 3, requires_grad=True)
    out = batchout(h, 0.3, 0.5, torch.Generator().manual_seed(0))
    v = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * v).sum(), h)
    assert torch.allclose(g, v), "gradient leaked through the perturbation branch"


def test_without_stop_gradient_the_gradient_would_differ(monkeypatch):
    """The test above can fail: advx's own batchout, its detach() turned into a no-op, leaks
    gradient through the perturbation branch, and the same check then sees it."""
    h = torch.randn(8, 4, 3, 3, requires_grad=True)
    v = torch.randn(8, 4, 3, 3)
    out = batchout(h, 0.3, 0.5, torch.Generator().manual_seed(0))
    (kept,) = torch.autograd.grad((out * v).sum(), h)
    monkeypatch.setattr(torch.Tensor, "detach", lambda self: self)
    leaky = batchout(h, 0.3, 0.5, torch.Generator().manual_seed(0))
    (g,) = torch.autograd.grad((leaky * v).sum(), h)
    assert torch.equal(leaky, out)  # the same forward values
    assert torch.allclose(kept, v) and not torch.allclose(g, v)


@pytest.mark.parametrize("k", [0.0, 0.25, 0.5, 1.0])
def test_fraction_augmented_is_k(k):
    h = torch.randn(64, 10)
    out = batchout(h, 0.5, k, torch.Generator().manual_seed(1))
    changed = (out != h).any(1)
    n = round(k * 64)
    assert not changed[n:].any()
    if n:
        assert changed[:n].float().mean() > 0.9  # a row with R[i] == i stays unchanged


def test_eta_is_the_step_towards_the_drawn_sample():
    h = torch.randn(32, 6)
    g = torch.Generator().manual_seed(2)
    r = torch.randint(0, 32, (32,), generator=torch.Generator().manual_seed(2))
    out = batchout(h, 0.2, 1.0, g)
    assert torch.allclose(out, h + 0.2 * (h[r] - h))


def test_uniform_eta_stays_in_range(data):
    model = advx.create("model", "digits-cnn").build(10, 1)
    aug = advx.create("augmentation", "batchout", eta_max=[0.15])
    ctx = make_context(model, data)
    aug.setup(ctx)
    model.train()
    seen = []
    for _ in range(50):
        model(make_batch(data).x)
        seen += list(ctx.state["batchout_eta"].values())
    aug.teardown(ctx)
    assert all(0 <= e <= 0.15 for e in seen) and max(seen) > 0.1 and min(seen) < 0.05


def test_feature_noise_has_the_size_eta_norm():
    h = torch.randn(16, 20) * 3
    out = feature_noise(h, 0.1, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose((out - h).norm(dim=1), 0.1 * h.norm(dim=1), rtol=1e-4)


def test_no_effect_in_eval_mode_and_hooks_removed(data):
    model = advx.create("model", "digits-cnn").build(10, 1)
    aug = advx.create("augmentation", "batchout", eta=[0.5])
    ctx = make_context(model, data)
    aug.setup(ctx)
    x = make_batch(data).x
    model.eval()
    with torch.no_grad():
        a = model(x)
        model.train()
        b = model(x)
    assert not torch.allclose(a, b), "BatchOut did nothing in training mode"
    aug.teardown(ctx)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


@pytest.mark.parametrize("name", ["batchout", "feature-noise"])
def test_trained_model_output_does_not_depend_on_the_batch(data, name):
    model = advx.create("model", "digits-cnn").build(10, 1)
    train(model, data, TrainSettings(epochs=2, batch_size=64, lr=2e-3),
          [Registry().create("training_augmentation", name, {"eta": [0.1, 0.1, 0.1]})], seed=0,
          device=torch.device("cpu"), registry=Registry())
    x = data.x_test[:32]
    with torch.no_grad():
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
        batched = model(x)
        shuffled = model(x.flip(0)).flip(0)
    assert torch.allclose(alone, batched, atol=1e-5) and torch.allclose(batched, shuffled, atol=1e-5)
    assert (batched.argmax(1) == data.y_test[:32]).float().mean() > 0.7


def test_eta_and_eta_max_are_exclusive(data):
    model = advx.create("model", "digits-cnn").build(10, 1)
    with pytest.raises(ValueError, match="not both"):
        advx.create("augmentation", "batchout", eta=[0.1], eta_max=[0.1]).setup(make_context(model, data))
    with pytest.raises(ValueError, match="2 eta values for 3 layers"):
        advx.create("augmentation", "batchout", eta=[0.1, 0.2]).setup(make_context(model, data))
