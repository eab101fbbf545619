"""Paper 000's intelligent mixup on digits: the mechanism, not the headline."""

import copy

import pytest
import torch

import advx
from advx.config import TrainSettings
from advx.registry import Registry
from advx.testing import digits_model, make_context
from advx.training import train


@pytest.fixture(scope="module")
def base():
    return digits_model()


def setup_ctx(model, data, **kw):
    aug = advx.create("augmentation", "intelligent-mixup", **kw)
    ctx = make_context(model, data)
    aug.setup(ctx)
    return aug, ctx, ctx.state["intelligent_mixup"]


def test_mixed_samples_are_added_with_soft_labels_summing_to_one(base):
    model, data = base
    aug, ctx, s = setup_ctx(copy.deepcopy(model), data, ratio=0.5)
    n = len(data.x_train)
    assert len(ctx.x_train) == n + round(0.5 * n) and len(ctx.y_train) == len(ctx.x_train)
    assert torch.allclose(ctx.y_train.sum(1), torch.ones(len(ctx.y_train)))
    assert torch.equal(ctx.x_train[:n], data.x_train), "original samples must stay untouched"


def test_mixed_image_lies_between_x_and_its_noisy_copy(base):
    model, data = base
    _, ctx, s = setup_ctx(copy.deepcopy(model), data, sigma=0.08)
    n = s["n_original"]
    x = data.x_train[s["index"]]
    mixed = ctx.x_train[n:]
    lo, hi = torch.minimum(x, s["noisy"]), torch.maximum(x, s["noisy"])
    assert ((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)).all()
    lam = s["lam"].view(-1, 1, 1, 1)
    assert torch.allclose(mixed, lam * x + (1 - lam) * s["noisy"], atol=1e-6)
    assert (s["lam"] > 0).all() and (s["lam"] < 1).all() and abs(float(s["lam"].mean()) - 0.5) < 0.05  # Beta(8, 8)


def test_predicted_labels_really_come_from_the_model(base):
    model, data = base
    _, ctx, s = setup_ctx(copy.deepcopy(model), data, sigma=0.3)
    with torch.no_grad():
        expected = model(s["noisy"]).argmax(1)
    assert torch.equal(s["predicted"], expected)
    n, lam = s["n_original"], s["lam"][:, None]
    soft = ctx.y_train[n:]
    want = lam * s["y"] + (1 - lam) * torch.nn.functional.one_hot(expected, 10)
    assert torch.allclose(soft, want, atol=1e-6)
    assert (expected != s["y"].argmax(1)).any(), "with σ = 0.3 some noisy copies must be mislabelled"


def test_current_model_labels_follow_the_model(base):
    model, data = base
    m = copy.deepcopy(model)
    aug, ctx, s = setup_ctx(m, data, labels_from="current", ratio=0.2)
    from advx.protocols import Batch

    n = s["n_original"]
    idx = torch.arange(n, n + 16)
    with torch.no_grad():
        m.fc2.bias.add_(torch.tensor([0.0] * 9 + [100.0]))  # the "current" model now says 9
    out = aug.augment(Batch(ctx.x_train[idx], ctx.y_train[idx], idx), ctx)
    lam = s["lam"][:16, None]
    assert torch.allclose(out.y[:, 9], lam[:, 0] * s["y"][:16, 9] + (1 - lam[:, 0]), atol=1e-6)


def test_fine_tuning_changes_the_model_not_the_data_or_the_labeller(base):
    model, data = base
    m = copy.deepcopy(model)
    before = copy.deepcopy(m.state_dict())
    aug = Registry().create("training_augmentation", "intelligent-mixup", {"sigma": 0.05})
    train(m, data, TrainSettings(epochs=1, batch_size=32, optimizer="adam", lr=1e-4), [aug], seed=0,
          device=torch.device("cpu"), registry=Registry())
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
    with torch.no_grad():
        assert (m(data.x_test).argmax(1) == data.y_test).float().mean() > 0.9
