"""Kou et al. (ICLR 2020)'s distribution classifier, paper 003's "drn" baseline: the KDE and the
DRN layer against what they must compute, then the defence as the evaluator builds it."""

import pytest
import torch

import advx
from advx.api import as_float
from advx.errors import ComponentParameterError
from advx.testing import check_defense, digits_model
from advx_counteract.distribution import DRN, DRNLayer, softmax_densities


def test_kde_rows_are_distributions_peaked_at_the_softmax_value():
    probs = torch.tensor([[[0.717, 0.283]] * 5])  # 1 image, 5 draws that agree, 2 classes
    d = softmax_densities(probs, bins=100, bandwidth=0.02)
    assert d.shape == (1, 2, 100)
    assert torch.allclose(d.sum(-1), torch.ones(1, 2))
    assert d[0, 0].argmax() == 71 and d[0, 1].argmax() == 28  # bin k covers [k/100, (k+1)/100)
    spread = softmax_densities(torch.tensor([[[0.1], [0.9]]]), bins=100, bandwidth=0.02)[0, 0]
    assert spread[10] > 10 * spread[50] and spread[90] > 10 * spread[50]  # two draws, two modes


def test_drn_layer_with_a_sharp_kernel_passes_a_distribution_through_and_a_flat_one_forgets_it():
    layer = DRNLayer(1, 1, bins=50, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in (layer.bias_quad, layer.bias_abs):
            p.zero_()
        p_in = softmax_densities(torch.tensor([[[0.33]]]), bins=50, bandwidth=0.03)
        layer.weight.fill_(5000.0)  # exp(-w (s - t)^2): nearly a delta, so P_out ~ P_in
        out = layer(p_in)
        assert torch.allclose(out.sum(-1), torch.ones(1, 1))
        assert out[0, 0].argmax() == p_in[0, 0].argmax()
        assert (out - p_in).abs().sum() < 0.3
        layer.weight.zero_()  # a flat kernel sees only the mass of P_in: the output is exp(B) = uniform
        assert torch.allclose(layer(p_in), torch.full((1, 1, 50), 1 / 50), atol=1e-6)


def test_drn_learns_which_class_density_sits_high():
    torch.manual_seed(0)
    y = torch.randint(0, 3, (300,))
    probs = torch.full((300, 8, 3), 0.2) + 0.05 * torch.rand(300, 8, 3)
    probs[torch.arange(300), :, y] = 0.6 + 0.05 * torch.rand(300, 8)
    p = softmax_densities(probs, bins=40, bandwidth=0.05)
    drn = DRN(3, 40, (4,), seed=0)
    opt = torch.optim.Adam(drn.parameters(), lr=0.05)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(drn(p), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (drn(p).argmax(1) == y).float().mean() > 0.95


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    model, data = digits_model()
    cache = tmp_path_factory.mktemp("drn-cache")
    context = {"train_x": data.x_train, "train_y": data.y_train, "num_classes": 10, "seed": 0,
               "train_index": torch.arange(len(data.y_train)), "cache_dir": cache}
    defense = advx.create("inference_defense", "distribution-classifier", draws=12, epochs=15, train_fraction=0.5)
    return model, data, defense, context, defense.wrap(model, context)


def test_fitted_on_clean_transforms_it_classifies_digits(fitted):
    model, data, defense, context, wrapped = fitted
    x, y = as_float(data.x_test), data.y_test
    wrapped.reseed(0)
    with torch.no_grad():
        drn_acc = (wrapped(x).argmax(1) == y).float().mean()
        vote = wrapped.densities(x)  # the same kind of draws, majority-free: the mean softmax of each class
    mean_softmax = (vote * torch.linspace(0.005, 0.995, 100)).sum(-1).argmax(1)
    mean_acc = (mean_softmax == y).float().mean()
    assert drn_acc > 0.8 and drn_acc > mean_acc - 0.05, (float(drn_acc), float(mean_acc))
    check_defense(defense, model, x[:16], 10, context)


def test_a_second_wrap_loads_the_fit_from_the_cache_and_draws_repeat_under_a_seed(fitted, monkeypatch):
    model, data, defense, context, wrapped = fitted
    monkeypatch.setattr(type(defense), "fit", lambda *a: pytest.fail("refitted instead of loading the cache"))
    again = defense.wrap(model, context)
    x = as_float(data.x_test[:40])
    with torch.no_grad():
        wrapped.reseed(3)
        again.reseed(3)
        first, second = wrapped(x), again(x)
        again.reseed(4)
        other = again(x)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)  # a new seed draws new transformations


def test_adaptive_attacks_get_an_input_gradient_through_the_whole_pipeline(fitted):
    model, data, _, _, wrapped = fitted
    x = as_float(data.x_test[:32]).clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(wrapped(x), data.y_test[:32])
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert wrapped.averages_draws == 12  # the sanity checks count its draws as EOT


def test_without_training_data_it_says_what_it_needs():
    model, _ = digits_model()
    with pytest.raises(ValueError, match="clean training images"):
        advx.create("inference_defense", "distribution-classifier").wrap(model, {"num_classes": 10})
    with pytest.raises(ComponentParameterError, match="min_scale 0.9 is above max_scale 0.5"):
        advx.create("inference_defense", "distribution-classifier", min_scale=0.9, max_scale=0.5)
