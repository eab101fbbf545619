"""Paper 001's augmentations on digits: mixing consistency, hook placement and removal, eps,
soft labels, and every recipe training end to end."""

import copy

import pytest
import torch

import advx
from advx.config import TrainSettings
from advx.data.sources import Digits
from advx.protocols import Batch
from advx.registry import Registry
from advx.testing import check_augmentation, make_batch, make_context
from advx.training import train


@pytest.fixture(scope="module")
def data():
    return Digits().load()


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return advx.create("model", "digits-cnn").build(10, 1)


def test_mixup_mixes_images_and_labels_with_the_same_lambda(model, data):
    ctx, batch = make_context(model, data), make_batch(data)
    out = check_augmentation(advx.create("augmentation", "mixup", alpha=1.0), ctx, batch)
    lam, perm = ctx.state["mixup"]
    assert 0 < lam < 1
    assert torch.allclose(out.x, lam * batch.x + (1 - lam) * batch.x[perm])
    assert torch.allclose(out.y, lam * batch.y + (1 - lam) * batch.y[perm])


def test_manifold_mixup_fires_at_the_drawn_layer_only_and_is_removed(model, data):
    aug = advx.create("augmentation", "manifold-mixup", include_input=False)
    drawn = set()
    for seed in range(12):
        ctx, batch = make_context(model, data, seed=seed), make_batch(data)
        aug.setup(ctx)
        out = aug.augment(batch, ctx)
        where, lam, perm = ctx.state["manifold_mixup"]
        layer = model.get_submodule(where)
        assert len(layer._forward_hooks) == 1
        others = [n for n in model.feature_layers if n != where]
        assert all(len(model.get_submodule(n)._forward_hooks) == 0 for n in others)
        captured = {}
        probe = layer.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
        model(out.x)
        probe.remove()
        assert ctx.state["manifold_mixup_fired"] == where
        assert len(layer._forward_hooks) == 0, "hook not removed after the batch"
        assert torch.allclose(out.y, lam * batch.y + (1 - lam) * batch.y[perm])
        drawn.add(where)
        aug.teardown(ctx)
    assert drawn == set(model.feature_layers)


def test_manifold_mixup_teardown_removes_an_unfired_hook(model, data):
    aug = advx.create("augmentation", "manifold-mixup", include_input=False)
    ctx = make_context(model, data)
    aug.setup(ctx)
    aug.augment(make_batch(data), ctx)
    aug.teardown(ctx)
    assert all(len(model.get_submodule(n)._forward_hooks) == 0 for n in model.feature_layers)


def test_manifold_mixup_rejects_unknown_layers(model, data):
    with pytest.raises(AttributeError):
        advx.create("augmentation", "manifold-mixup", layers=["nope"]).setup(make_context(model, data))


@pytest.mark.parametrize("mode", ["replace", "extend", "half"])
def test_adversarial_batches_respect_eps_and_keep_labels(model, data, mode):
    aug = advx.create("augmentation", "pgd-training", params={"eps": 0.1, "steps": 3}, mode=mode)
    ctx, batch = make_context(model, data), make_batch(data)
    model.train()
    out = check_augmentation(aug, ctx, batch)
    assert model.training, "the attack must hand the model back in train mode"
    n = len(batch.x)
    adv = out.x[n:] if mode == "extend" else out.x[: n // 2] if mode == "half" else out.x
    clean = batch.x[: len(adv)]
    assert (adv - clean).abs().max() <= 0.1 + 1e-6 and (adv - clean).abs().max() > 0
    assert out.y.shape[0] == (2 * n if mode == "extend" else n)
    if mode == "half":
        assert torch.equal(out.x[n // 2:], batch.x[n // 2:])


def test_eps_warmup_ramps_the_budget_then_holds_it(model, data):
    aug = advx.create("augmentation", "pgd-training", params={"eps": 0.2, "alpha": 0.05, "steps": 3},
                      eps_warmup=2)
    ctx, batch = make_context(model, data), make_batch(data)
    aug.setup(ctx)
    steps_per_epoch = -(-len(ctx.x_train) // ctx.settings.batch_size)
    seen = []
    for step in (0, steps_per_epoch - 1, 2 * steps_per_epoch - 1, 5 * steps_per_epoch):
        ctx.step = step
        out = aug.augment(batch, ctx)
        seen.append(float((out.x - batch.x).abs().max()))
        full = min(1.0, (step + 1) / (2 * steps_per_epoch))
        assert aug.budget_fraction(ctx) == pytest.approx(full)
        assert seen[-1] <= 0.2 * full + 1e-6
    assert seen[0] < seen[1] < seen[2] and seen[2] == pytest.approx(0.2, abs=1e-6)
    assert seen[3] == pytest.approx(0.2, abs=1e-6)


def test_attack_in_train_mode_updates_batchnorm_stats(data):
    m = advx.create("model", "resnet9").build(10, 1)
    before = copy.deepcopy(m.conv_block_1.bn.running_mean)
    aug = advx.create("augmentation", "pgd-training", params={"eps": 0.1, "steps": 1}, eval_mode=False)
    ctx = make_context(m, data)
    aug.setup(ctx)
    m.train()
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.rand(8, 1, 32, 32, generator=g), torch.eye(10)[:8], torch.arange(8))
    aug.augment(batch, ctx)
    assert not torch.equal(before, m.conv_block_1.bn.running_mean)


def test_partial_pgd_mixes_clean_with_its_own_adversarial(model, data):
    aug = advx.create("augmentation", "partial-pgd", params={"eps": 0.1, "steps": 2})
    ctx, batch = make_context(model, data), make_batch(data)
    out = check_augmentation(aug, ctx, batch)
    lam = ctx.state["partial_pgd_lambda"]
    assert (out.x - batch.x).abs().max() <= (1 - lam) * 0.1 + 1e-6
    assert torch.equal(out.y, batch.y)


def test_soft_labels_follow_the_paper(model, data):
    out = check_augmentation(advx.create("augmentation", "soft-labels", sigma=0.01), make_context(model, data),
                             make_batch(data))
    assert torch.allclose(out.y.max(1).values, torch.full((32,), 1 - 9 * 0.01))
    assert torch.allclose(out.y.min(1).values, torch.full((32,), 0.01))
    with pytest.raises(ValueError, match="too large"):
        advx.create("augmentation", "soft-labels", sigma=0.2).augment(make_batch(data), make_context(model, data))


def test_iat_loss_is_the_mean_of_clean_and_adversarial_mixup_losses(model, data):
    aug = advx.create("augmentation", "iat", params={"eps": 0.1, "steps": 2})
    ctx, batch = make_context(model, data), make_batch(data)
    aug.setup(ctx)
    loss = aug.loss(model, batch, ctx)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad


RECIPES = {
    "mixup": [{"name": "mixup"}],
    "manifold": [{"name": "manifold-mixup"}],
    "pgd": [{"name": "pgd-training", "params": {"eps": 0.1, "steps": 2}}],
    "pgd+mixup": [{"name": "pgd-training", "params": {"eps": 0.1, "steps": 2}}, {"name": "mixup"}],
    "pgd+manifold": [{"name": "pgd-training", "params": {"eps": 0.1, "steps": 2}}, {"name": "manifold-mixup"}],
    "partial": [{"name": "partial-pgd", "params": {"eps": 0.1, "steps": 2}}],
    "iat": [{"name": "iat", "params": {"eps": 0.1, "steps": 2}}],
    "soft+mixup": [{"name": "soft-labels"}, {"name": "mixup"}],
    "fgsm-half": [{"name": "fgsm-training", "params": {"eps": 0.1}}],
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_trains_and_leaves_no_hooks(model, data, recipe):
    reg = Registry()
    augs = [reg.create("training_augmentation", a["name"], {k: v for k, v in a.items() if k != "name"})
            for a in RECIPES[recipe]]
    train(model, data, TrainSettings(epochs=2, batch_size=64, lr=2e-3), augs, seed=0, device=torch.device("cpu"),
          registry=reg)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with torch.no_grad():
        acc = (model(data.x_test).argmax(1) == data.y_test).float().mean()
    assert acc > 0.5, f"{recipe}: {acc:.2f}"
